package email

import (
	"bytes"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

// With PIPELINING, MAIL FROM, RCPT TO and DATA arrive together; there is
// no NOOP before a message and no RSET after one.
func TestSender_Send_Pipelines(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME")
	s := newSender(t, srv.config())
	r := send(t, s, message("k1"))
	send(t, s, message("k2"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	group := []string{"MAIL FROM:<crier@example.org> BODY=8BITMIME", "RCPT TO:<minister@example.gov>", "DATA"}
	want := [][]string{{"EHLO example.org"}, group, group, {"QUIT"}}
	if got := srv.commands(); !equalBatches(got, want) {
		t.Errorf("server received %q, want %q", got, want)
	}
	if r.Status != "250 2.0.0 queued as 42" {
		t.Errorf("receipt status %q, want the final reply", r.Status)
	}
	if n := len(srv.messages()); n != 2 {
		t.Errorf("server received %d messages, want 2", n)
	}
}

// Without PIPELINING every command waits for the previous reply.
func TestSender_Send_WithoutPipelining(t *testing.T) {
	srv := newScriptServer(t, replyOK, "8BITMIME")
	s := newSender(t, srv.config())
	send(t, s, message("k1"))
	send(t, s, message("k2"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := stepwiseLines(t, srv)
	one := []string{"MAIL FROM:<crier@example.org> BODY=8BITMIME", "RCPT TO:<minister@example.gov>", "DATA"}
	want := append(append(append([]string{"EHLO example.org"}, one...), one...), "QUIT")
	if !slices.Equal(lines, want) {
		t.Errorf("server received %q, want %q", lines, want)
	}
	msgs := srv.messages()
	if len(msgs) != 2 {
		t.Fatalf("server received %d messages, want 2", len(msgs))
	}
	got, err := mail.ReadMessage(bytes.NewReader(msgs[1]))
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("X-Crier-Delivery") != "k2" || got.Header.Get("To") != "<minister@example.gov>" {
		t.Errorf("header %v, want the second message's", got.Header)
	}
}

// SMTPUTF8 goes on MAIL FROM only when the server offers it and an
// address needs it; a non-ASCII address has go-mail compose the message.
func TestSender_Send_SMTPUTF8(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			ext := []string{"SMTPUTF8"}
			if pipelining {
				ext = append(ext, "PIPELINING")
			}
			srv := newScriptServer(t, replyOK, ext...)
			s := newSender(t, srv.config())
			send(t, s, message("ascii"))
			m := message("utf8")
			m.Address = "siân@example.gov"
			send(t, s, m)

			var mails []string
			for _, b := range srv.commands() {
				for _, l := range b {
					if strings.HasPrefix(l, "MAIL") || strings.HasPrefix(l, "RCPT") {
						mails = append(mails, l)
					}
				}
			}
			want := []string{"MAIL FROM:<crier@example.org>", "RCPT TO:<minister@example.gov>",
				"MAIL FROM:<crier@example.org> SMTPUTF8", "RCPT TO:<siân@example.gov>"}
			if !slices.Equal(mails, want) {
				t.Errorf("envelope commands %q, want %q", mails, want)
			}
			msgs := srv.messages()
			got, err := mail.ReadMessage(bytes.NewReader(msgs[len(msgs)-1]))
			if err != nil {
				t.Fatal(err)
			}
			if to := got.Header.Get("To"); to != "<siân@example.gov>" {
				t.Errorf("To = %q, want <siân@example.gov>", to)
			}
		})
	}
}

// A failure after the whole message went out, waiting for its reply, may
// have delivered it; one before the message ended did not.
func TestSender_Send_InDoubt(t *testing.T) {
	tests := []struct {
		name      string
		after     afterMessage
		ctx       time.Duration // a caller's deadline, 0 for none
		reason    channels.Reason
		maybeSent bool
	}{
		{"hung up after the message", hangUp, 0, channels.ReasonNetwork, true},
		{"silent after the message past the timeout", silent, 0, channels.ReasonTimeout, true},
		{"caller's deadline after the message", silent, 200 * time.Millisecond, channels.ReasonTimeout, true},
	}
	for _, tt := range tests {
		for _, pipelining := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/pipelining=%v", tt.name, pipelining), func(t *testing.T) {
				var ext []string
				if pipelining {
					ext = append(ext, "PIPELINING")
				}
				srv := newScriptServer(t, tt.after, ext...)
				sendInDoubt(t, srv, tt.ctx, tt.reason, tt.maybeSent)
				if len(srv.messages()) != 1 {
					t.Errorf("server received %d messages, want 1", len(srv.messages()))
				}
			})
		}
	}
}

// Failures before the message's end are not in doubt, whatever the stage,
// and neither is a refusal of the whole message.
func TestSender_Send_NotInDoubt(t *testing.T) {
	drop := channeltest.ErrSMTPDrop
	tests := []struct {
		name  string
		stage channeltest.SMTPStage
		reply error
	}{
		{"dropped at MAIL", channeltest.SMTPStageMail, drop},
		{"dropped at RCPT", channeltest.SMTPStageRcpt, drop},
		{"refused at MAIL", channeltest.SMTPStageMail, channeltest.SMTPReply(451, "4.3.0", "later")},
		{"refused at RCPT", channeltest.SMTPStageRcpt, channeltest.SMTPReply(550, "5.1.1", "no such user")},
		{"refused after the message", channeltest.SMTPStageData, channeltest.SMTPReply(451, "4.7.1", "greylisted")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(func(s channeltest.SMTPStage, _ string) error {
				if s == tt.stage {
					return tt.reply
				}
				return nil
			}))
			s := newSender(t, peerConfig(p))
			_, err := s.Send(t.Context(), message("k"))
			if err == nil || channels.MaybeSent(err) {
				t.Errorf("Send = %v, maybe sent %v; want a failure that is not in doubt", err, channels.MaybeSent(err))
			}
		})
	}
	t.Run("server hangs at MAIL", func(t *testing.T) {
		p := channeltest.NewSMTPPeer(t, channeltest.SMTPLatency(time.Minute))
		s := newSender(t, peerConfig(p, func(c *Config) { c.Timeout = 200 * time.Millisecond }))
		_, err := s.Send(t.Context(), message("k"))
		if reason, _, _ := channels.Classify(err); reason != channels.ReasonTimeout || channels.MaybeSent(err) {
			t.Errorf("Send = %v (%s, maybe sent %v); want a timeout that is not in doubt", err, reason, channels.MaybeSent(err))
		}
	})
}

// An address with a line break never reaches the server.
func TestSender_Send_RefusesLineBreakInAddress(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING")
	s := newSender(t, srv.config())
	for _, addr := range []string{"a@example.org\r\nRCPT TO:<b@example.org>", "<a@example.org>\nDATA"} {
		m := message("k")
		m.Address = addr
		_, err := s.Send(t.Context(), m)
		if reason, retryable, _ := channels.Classify(err); reason != channels.ReasonBadAddress || retryable {
			t.Errorf("Send to %q = %v (%s); want permanent bad_address", addr, err, reason)
		}
	}
	if got := srv.commands(); len(got) != 0 {
		t.Errorf("server received %q, want nothing", got)
	}
}

// A server that answers 354 although the recipient was refused gets no
// message, and the connection is not used again.
func TestSender_Send_DataAcceptedAfterRefusal(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING")
	srv.setRcpt("550 5.1.1 no such user")
	s := newSender(t, srv.config())
	_, err := s.Send(t.Context(), message("k1"))
	if reason, retryable, _ := channels.Classify(err); reason != channels.ReasonBadAddress || retryable {
		t.Errorf("Send = %v (%s); want permanent bad_address", err, reason)
	}
	srv.setRcpt("250 2.1.5 ok")
	send(t, s, message("k2"))
	if n := len(srv.messages()); n != 1 || srv.connections() != 2 {
		t.Errorf("server received %d messages on %d connections, want 1 on 2", n, srv.connections())
	}
}

func equalBatches(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}
