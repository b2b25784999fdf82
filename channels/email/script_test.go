package email

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// afterMessage is what a scriptServer does once a message's final "." has
// arrived.
type afterMessage int

const (
	replyOK afterMessage = iota // 250
	hangUp                      // close the connection without a reply
	silent                      // say nothing until the client gives up
)

// scriptServer is a bare SMTP server for what the channeltest peer cannot
// do: leave PIPELINING out, show how the client grouped its commands, and
// go quiet or hang up after a message. It accepts every command.
type scriptServer struct {
	ext   []string // EHLO keywords, for example "PIPELINING"
	after afterMessage

	ln   net.Listener
	done chan struct{}

	mu      sync.Mutex
	rcpt    string     // the reply to RCPT TO, "" for 250
	batches [][]string // command lines, grouped by what arrived together
	msgs    [][]byte   // messages as they arrived (dot-stuffed, without the final ".")
	conns   []net.Conn
}

func newScriptServer(t *testing.T, after afterMessage, ext ...string) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{ext: ext, after: after, ln: ln, done: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		_ = ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			_ = c.Close()
		}
	})
	return s
}

// config is a client configuration for the server.
func (s *scriptServer) config() Config {
	return Config{Host: "127.0.0.1", Port: s.ln.Addr().(*net.TCPAddr).Port, TLS: TLSNone,
		From: "crier@example.org", Timeout: 5 * time.Second}
}

func (s *scriptServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	reply := func(lines ...string) { _, _ = c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
	reply("220 script ESMTP")
	var batch []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		batch = append(batch, line)
		if r.Buffered() == 0 {
			s.mu.Lock()
			s.batches = append(s.batches, batch)
			s.mu.Unlock()
			batch = nil
		}
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO":
			lines := []string{"250-script"}
			for _, e := range s.ext {
				lines = append(lines, "250-"+e)
			}
			lines[len(lines)-1] = strings.Replace(lines[len(lines)-1], "250-", "250 ", 1)
			reply(lines...)
		case "RCPT":
			s.mu.Lock()
			answer := s.rcpt
			s.mu.Unlock()
			if answer == "" {
				answer = "250 2.1.5 ok"
			}
			reply(answer)
		case "MAIL", "RSET", "NOOP":
			reply("250 2.0.0 ok")
		case "DATA":
			reply("354 go ahead")
			var msg bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, msg.Bytes())
			s.mu.Unlock()
			switch s.after {
			case hangUp:
				return
			case silent:
				<-s.done
				return
			}
			reply("250 2.0.0 queued as 42")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("500 5.5.1 unknown command")
		}
	}
}

// setRcpt changes the reply to RCPT TO.
func (s *scriptServer) setRcpt(reply string) {
	s.mu.Lock()
	s.rcpt = reply
	s.mu.Unlock()
}

// connections is the number of connections accepted so far.
func (s *scriptServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// commands returns the command lines received so far, grouped by what
// arrived together.
func (s *scriptServer) commands() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.batches...)
}

// messages returns the messages received so far.
func (s *scriptServer) messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.msgs...)
}
