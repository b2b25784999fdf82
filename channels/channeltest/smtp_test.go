package channeltest

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func dialPeer(t *testing.T, p *SMTPPeer) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(net.JoinHostPort(p.Host, strconv.Itoa(p.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSMTPPeer_Auth(t *testing.T) {
	tests := []struct {
		name     string
		client   sasl.Client
		wantCode int // 0 = accepted
	}{
		{"plain", sasl.NewPlainClient("", "u", "p"), 0},
		{"login", sasl.NewLoginClient("u", "p"), 0},
		{"plain wrong password", sasl.NewPlainClient("", "u", "nope"), 535},
		{"login wrong user", sasl.NewLoginClient("x", "p"), 535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewSMTPPeer(t, SMTPAuth("u", "p"))
			c := dialPeer(t, p)
			err := c.Auth(tt.client)
			var se *smtp.SMTPError
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("Auth: %v", err)
			case tt.wantCode != 0 && (!errors.As(err, &se) || se.Code != tt.wantCode):
				t.Fatalf("Auth: %v, want code %d", err, tt.wantCode)
			case tt.wantCode != 0:
				return
			}
			if err := c.SendMail("a@example.org", []string{"b@example.org"}, strings.NewReader("Subject: hi\r\n\r\nbody\r\n")); err != nil {
				t.Fatal(err)
			}
			if m := p.Messages(); len(m) != 1 || m[0].Auth != "u" || m[0].Header.Get("Subject") != "hi" || m[0].Conn != 1 {
				t.Errorf("recorded %+v, want one message from AUTH u on connection 1", m)
			}
		})
	}
}

func TestSMTPPeer_RequiresAuth(t *testing.T) {
	p := NewSMTPPeer(t, SMTPAuth("u", "p"))
	err := dialPeer(t, p).Mail("a@example.org", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 {
		t.Errorf("MAIL without AUTH: %v, want 530", err)
	}
}

func TestSMTPPeer_Discard(t *testing.T) {
	p := NewSMTPPeer(t, SMTPDiscard())
	c := dialPeer(t, p)
	for range 3 {
		if err := c.SendMail("a@example.org", []string{"b@example.org"}, strings.NewReader("\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if p.Count() != 3 || len(p.Messages()) != 0 || p.Connections() != 1 {
		t.Errorf("count %d, kept %d, connections %d; want 3, 0, 1", p.Count(), len(p.Messages()), p.Connections())
	}
}

func TestSMTPPeer_IdleTimeout(t *testing.T) {
	p := NewSMTPPeer(t, SMTPIdleTimeout(50*time.Millisecond))
	conn, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(p.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // hang guard only
	r := bufio.NewReader(conn)
	greeting, _ := r.ReadString('\n')
	bye, _ := r.ReadString('\n')
	if !strings.HasPrefix(greeting, "220 ") || !strings.HasPrefix(bye, "421 4.4.2") {
		t.Errorf("got %q then %q, want a 220 greeting then 421 4.4.2", greeting, bye)
	}
	p.WaitClosed(t, 1)
}

func TestSMTPPeer_HookAndDrop(t *testing.T) {
	p := NewSMTPPeer(t, SMTPHook(func(stage SMTPStage, addr string) error {
		switch {
		case stage == SMTPStageRcpt && addr == "gone@example.org":
			return SMTPReply(550, "5.1.1", "no such user")
		case stage == SMTPStageData && addr == "drop@example.org":
			return ErrSMTPDrop
		}
		return nil
	}))
	c := dialPeer(t, p)
	err := c.SendMail("a@example.org", []string{"gone@example.org"}, strings.NewReader("\r\nx\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("RCPT gone@: %v, want 550 5.1.1", err)
	}
	_ = c.Reset()
	if err := c.SendMail("a@example.org", []string{"drop@example.org"}, strings.NewReader("\r\nx\r\n")); err == nil {
		t.Error("DATA for drop@ succeeded, want the connection dropped")
	}
	p.WaitClosed(t, 1)
	if p.Count() != 0 {
		t.Errorf("peer stored %d messages, want 0", p.Count())
	}
}

func TestSMTPPeer_DropAfterStored(t *testing.T) {
	p := NewSMTPPeer(t, SMTPHook(func(stage SMTPStage, addr string) error {
		if stage == SMTPStageStored && addr == "lost-reply@example.org" {
			return ErrSMTPDrop
		}
		return nil
	}))
	c := dialPeer(t, p)
	if err := c.SendMail("a@example.org", []string{"lost-reply@example.org"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Error("the client got a reply, want the connection dropped before it")
	}
	p.WaitClosed(t, 1)
	if got := p.Messages(); p.Count() != 1 || len(got) != 1 || got[0].To[0] != "lost-reply@example.org" {
		t.Errorf("peer stored %d messages (%d kept), want the one whose reply was lost", p.Count(), len(got))
	}
}
