package email

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/internal/fields"
)

// refusing is a peer with AUTH that answers stage with reply.
func refusing(stage channeltest.SMTPStage, reply error) func(t *testing.T) (Config, []Option) {
	return func(t *testing.T) (Config, []Option) {
		p := channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", testPassword),
			channeltest.SMTPHook(func(s channeltest.SMTPStage, _ string) error {
				if s == stage {
					return reply
				}
				return nil
			}))
		return peerConfig(p), nil
	}
}

// peerWith is a peer with AUTH and opts; mod adjusts the client config.
func peerWith(mod func(*Config), opts ...channeltest.SMTPOption) func(t *testing.T) (Config, []Option) {
	return func(t *testing.T) (Config, []Option) {
		p := channeltest.NewSMTPPeer(t, append(opts, channeltest.SMTPAuth("crier", testPassword))...)
		c := peerConfig(p)
		if mod != nil {
			mod(&c)
		}
		return c, nil
	}
}

// withCredentials is a config for a server that is not an SMTPPeer.
func withCredentials(port int) Config {
	return Config{Host: "127.0.0.1", Port: port, TLS: TLSNone, From: "crier@example.org",
		Username: "crier", Password: fields.Secret(testPassword), Timeout: 300 * time.Millisecond}
}

// closedPort is a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) (Config, []Option) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return withCredentials(port), nil
}

// silentServer accepts connections and never says a word.
func silentServer(t *testing.T) (Config, []Option) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return withCredentials(ln.Addr().(*net.TCPAddr).Port), nil
}

func TestSender_Send_Classifies(t *testing.T) {
	reply := channeltest.SMTPReply
	rcpt, data, mail := channeltest.SMTPStageRcpt, channeltest.SMTPStageData, channeltest.SMTPStageMail
	short := func(c *Config) { c.Timeout = 300 * time.Millisecond }
	tests := []struct {
		name      string
		setup     func(t *testing.T) (Config, []Option)
		reason    channels.Reason
		retryable bool
		code      string
	}{
		{"rcpt 550 5.1.1", refusing(rcpt, reply(550, "5.1.1", "no such user")), channels.ReasonBadAddress, false, "550"},
		{"rcpt 551", refusing(rcpt, reply(551, "", "user not local")), channels.ReasonBadAddress, false, "551"},
		{"rcpt 553 5.1.3", refusing(rcpt, reply(553, "5.1.3", "bad address syntax")), channels.ReasonBadAddress, false, "553"},
		{"rcpt 554 5.1.2", refusing(rcpt, reply(554, "5.1.2", "bad destination system")), channels.ReasonBadAddress, false, "554"},
		{"rcpt 550 5.7.1 policy", refusing(rcpt, reply(550, "5.7.1", "relaying denied")), channels.ReasonRejected, false, "550"},
		{"rcpt 554 5.7.1", refusing(rcpt, reply(554, "5.7.1", "rejected by policy")), channels.ReasonRejected, false, "554"},
		{"rcpt 451 4.3.0", refusing(rcpt, reply(451, "4.3.0", "try again later")), channels.ReasonServer, true, "451"},
		{"rcpt 452 4.2.2", refusing(rcpt, reply(452, "4.2.2", "mailbox full")), channels.ReasonServer, true, "452"},
		{"rcpt 421 4.7.0", refusing(rcpt, reply(421, "4.7.0", "too many connections")), channels.ReasonServer, true, "421"},
		{"mail 553 5.1.8 sender", refusing(mail, reply(553, "5.1.8", "bad sender domain")), channels.ReasonRejected, false, "553"},
		{"data 554 5.6.0", refusing(data, reply(554, "5.6.0", "message content rejected")), channels.ReasonRejected, false, "554"},
		{"data 451 4.7.1 greylisted", refusing(data, reply(451, "4.7.1", "greylisted")), channels.ReasonServer, true, "451"},
		{"wrong password 535", peerWith(func(c *Config) { c.Password = fields.Secret(testPassword + "-wrong") }),
			channels.ReasonAuth, false, "535"},
		{"no credentials 530", peerWith(func(c *Config) { c.Username, c.Password = "", "" }),
			channels.ReasonAuth, false, "530"},
		{"connection refused", closedPort, channels.ReasonNetwork, true, ""},
		{"silent server past the timeout", silentServer, channels.ReasonTimeout, true, ""},
		{"server hangs at MAIL past the timeout", peerWith(short, channeltest.SMTPLatency(time.Minute)),
			channels.ReasonTimeout, true, ""},
		{"starttls required but not offered", peerWith(func(c *Config) { c.TLS = TLSStartTLS }),
			channels.ReasonConfig, false, ""},
		{"implicit tls against a plain server", peerWith(func(c *Config) { c.TLS = TLSImplicit }),
			channels.ReasonConfig, false, ""},
		{"untrusted certificate", peerWith(func(c *Config) { c.TLS = TLSStartTLS }, channeltest.SMTPStartTLS()),
			channels.ReasonConfig, false, ""},
		{"auth mechanism not offered", peerWith(func(c *Config) { c.Auth = AuthCramMD5 }),
			channels.ReasonConfig, false, ""},
		{"dropped at RCPT", refusing(rcpt, channeltest.ErrSMTPDrop), channels.ReasonNetwork, true, ""},
		{"dropped mid-DATA", refusing(data, channeltest.ErrSMTPDrop), channels.ReasonNetwork, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, opts := tt.setup(t)
			s := newSender(t, c, opts...)
			_, err := s.Send(t.Context(), message("k"))
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			reason, retryable, _ := channels.Classify(err)
			if reason != tt.reason || retryable != tt.retryable || channels.Code(err) != tt.code {
				t.Errorf("Classify = %s, retryable %v, code %q; want %s, %v, %q\nerror: %v",
					reason, retryable, channels.Code(err), tt.reason, tt.retryable, tt.code, err)
			}
			// Only a connection lost after the whole message went out
			// leaves it in doubt; the peer may drop mid-DATA before or
			// after the client has written it all.
			if channels.MaybeSent(err) && tt.name != "dropped mid-DATA" {
				t.Errorf("error is marked maybe sent: %v", err)
			}
			assertNoSecret(t, err)
			t.Logf("%v", err)
		})
	}
}

// A server that echoes the password back must not get it into the log.
func TestSender_Send_ScrubsEchoedPassword(t *testing.T) {
	plain := base64.StdEncoding.EncodeToString([]byte("\x00crier\x00" + testPassword))
	c, _ := refusing(channeltest.SMTPStageRcpt,
		channeltest.SMTPReply(550, "5.1.1", "no such user; you sent "+testPassword+" and "+plain))(t)
	s := newSender(t, c)
	_, err := s.Send(t.Context(), message("k"))
	assertNoSecret(t, err)
	if reason, _, _ := channels.Classify(err); reason != channels.ReasonBadAddress || !strings.Contains(err.Error(), fields.Redacted) {
		t.Errorf("err = %v (%s); want bad_address with the password replaced by %s", err, reason, fields.Redacted)
	}
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	forms := []string{testPassword, base64.StdEncoding.EncodeToString([]byte(testPassword))}
	for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("error text contains the password: %s", text)
			}
		}
	}
}
