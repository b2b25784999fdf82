package email

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
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
// go quiet or hang up after a message. It accepts every command. It takes
// BDAT (RFC 3030) whether or not it offers CHUNKING.
type scriptServer struct {
	ext   []string // EHLO keywords, for example "PIPELINING"
	after afterMessage

	ln   net.Listener
	done chan struct{}

	mu      sync.Mutex
	rcpt    string            // the reply to RCPT TO, "" for 250
	rcptTo  map[string]string // the reply to RCPT TO for one address, over rcpt
	strict  bool              // DATA without an accepted recipient gets 554, not 354; BDAT gets 503
	okFirst int               // messages per connection answered 250 before after applies
	bdatTo  map[string]string // the reply to BDAT LAST for a message to one address, "" for 250
	cutAt   int               // > 0: hang up after reading this many bytes of a BDAT chunk
	batches [][]string        // command lines, grouped by what arrived together
	msgs    [][]byte          // messages as they arrived (dot-stuffed, without the final "."), or a BDAT message's chunks
	wire    []wireChunk       // the client's bytes, cut wherever the server wrote
	conns   []net.Conn
}

// wireChunk is what a client wrote between two of the server's replies on
// connection conn (counting from 1).
type wireChunk struct {
	conn int
	data string
}

// wireRecorder cuts what the client sends into wireChunks: a chunk ends
// when the server writes.
type wireRecorder struct {
	net.Conn
	s     *scriptServer
	id    int
	chunk int // index of this connection's open chunk in s.wire, -1 if none
}

func (r *wireRecorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n > 0 {
		r.s.mu.Lock()
		if r.chunk < 0 {
			r.s.wire = append(r.s.wire, wireChunk{conn: r.id})
			r.chunk = len(r.s.wire) - 1
		}
		r.s.wire[r.chunk].data += string(b[:n])
		r.s.mu.Unlock()
	}
	return n, err
}

func (r *wireRecorder) Write(b []byte) (int, error) {
	r.chunk = -1
	return r.Conn.Write(b)
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
			id := len(s.conns)
			if s.cutAt > 0 {
				// A small receive buffer, so that the client is still
				// writing a large chunk when the connection goes.
				_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
			}
			s.mu.Unlock()
			go s.serve(&wireRecorder{Conn: c, s: s, id: id, chunk: -1})
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
	accepted := 0 // recipients accepted in the current transaction
	var to string // the last recipient of the current transaction
	sent := 0     // messages on this connection
	var chunks bytes.Buffer
	// delivered applies what the server does once a message has arrived;
	// false means the connection ends.
	delivered := func(msg []byte) bool {
		s.mu.Lock()
		s.msgs = append(s.msgs, msg)
		okFirst := s.okFirst
		s.mu.Unlock()
		sent++
		if sent <= okFirst {
			reply("250 2.0.0 queued as 42")
			return true
		}
		switch s.after {
		case hangUp:
			return false
		case silent:
			<-s.done
			return false
		}
		reply("250 2.0.0 queued as 42")
		return true
	}
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
			if a, ok := s.rcptTo[strings.Trim(strings.TrimPrefix(line, "RCPT TO:"), "<>")]; ok {
				answer = a
			}
			s.mu.Unlock()
			if answer == "" {
				answer = "250 2.1.5 ok"
			}
			if strings.HasPrefix(answer, "2") {
				accepted++
				to = strings.Trim(strings.TrimPrefix(line, "RCPT TO:"), "<>")
			}
			reply(answer)
		case "MAIL", "RSET", "NOOP":
			accepted, to = 0, ""
			chunks.Reset()
			reply("250 2.0.0 ok")
		case "BDAT":
			args := strings.Fields(line)[1:]
			size, err := strconv.Atoi(args[0])
			if err != nil || len(args) > 2 {
				reply("501 5.5.4 bad BDAT")
				return
			}
			last := len(args) == 2 && strings.EqualFold(args[1], "LAST")
			s.mu.Lock()
			strict, cutAt, answer := s.strict, s.cutAt, s.bdatTo[to]
			s.mu.Unlock()
			if cutAt > 0 {
				_, _ = io.CopyN(io.Discard, r, int64(min(cutAt, size)))
				return
			}
			chunk := make([]byte, size)
			if _, err := io.ReadFull(r, chunk); err != nil {
				return
			}
			if r.Buffered() == 0 && len(batch) > 0 {
				s.mu.Lock()
				s.batches = append(s.batches, batch)
				s.mu.Unlock()
				batch = nil
			}
			switch {
			case strict && accepted == 0:
				// The chunk is read and dropped (RFC 3030 2).
				reply("503 5.5.1 no valid recipients")
				continue
			case !last:
				chunks.Write(chunk)
				reply("250 2.0.0 chunk ok")
				continue
			case answer != "":
				chunks.Reset()
				reply(answer)
				continue
			}
			chunks.Write(chunk)
			msg := bytes.Clone(chunks.Bytes())
			chunks.Reset()
			accepted = 0
			if !delivered(msg) {
				return
			}
		case "DATA":
			s.mu.Lock()
			strict := s.strict
			s.mu.Unlock()
			if strict && accepted == 0 {
				reply("554 5.5.1 no valid recipients")
				continue
			}
			accepted = 0
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
			if !delivered(msg.Bytes()) {
				return
			}
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

// setRcptTo makes the server answer RCPT TO for addr with reply.
func (s *scriptServer) setRcptTo(addr, reply string) {
	s.mu.Lock()
	if s.rcptTo == nil {
		s.rcptTo = map[string]string{}
	}
	s.rcptTo[addr] = reply
	s.mu.Unlock()
}

// setStrict makes DATA without an accepted recipient get 554, as real
// servers answer, instead of 354.
func (s *scriptServer) setStrict() {
	s.mu.Lock()
	s.strict = true
	s.mu.Unlock()
}

// setBdatTo makes the server answer BDAT LAST for a message to addr with
// reply.
func (s *scriptServer) setBdatTo(addr, reply string) {
	s.mu.Lock()
	if s.bdatTo == nil {
		s.bdatTo = map[string]string{}
	}
	s.bdatTo[addr] = reply
	s.mu.Unlock()
}

// setCutAt makes the server hang up once it has read n bytes of a BDAT
// chunk. Set it before the first connection: it also shrinks the receive
// buffer of the connections accepted after it.
func (s *scriptServer) setCutAt(n int) {
	s.mu.Lock()
	s.cutAt = n
	s.mu.Unlock()
}

// setOKFirst makes the server answer the first n messages on each
// connection with 250 before its afterMessage applies.
func (s *scriptServer) setOKFirst(n int) {
	s.mu.Lock()
	s.okFirst = n
	s.mu.Unlock()
}

// chunks returns what the clients wrote so far, cut wherever the server
// wrote.
func (s *scriptServer) chunks() []wireChunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wireChunk(nil), s.wire...)
}

// drop closes every connection accepted so far without a word.
func (s *scriptServer) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
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

// stepwiseLines is every command the server received, failing the test if
// any two arrived together (the client pipelined to a server that does not
// offer PIPELINING).
func stepwiseLines(t *testing.T, srv *scriptServer) []string {
	t.Helper()
	var lines []string
	for _, b := range srv.commands() {
		if len(b) != 1 {
			t.Errorf("commands %q arrived together from a server without PIPELINING", b)
		}
		lines = append(lines, b...)
	}
	return lines
}

// sendInDoubt sends one message to srv with a short timeout, or with a long
// one and the caller's deadline when deadline is set, and checks how the
// failure is classified.
func sendInDoubt(t *testing.T, srv *scriptServer, deadline time.Duration, reason channels.Reason, maybeSent bool) {
	t.Helper()
	c := srv.config()
	c.Timeout = 300 * time.Millisecond
	if deadline > 0 {
		c.Timeout = time.Minute
	}
	s := newSender(t, c)
	ctx := t.Context()
	if deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, deadline)
		defer cancel()
	}
	_, err := s.Send(ctx, message("k"))
	got, retryable, _ := channels.Classify(err)
	if got != reason || !retryable || channels.MaybeSent(err) != maybeSent {
		t.Errorf("Classify(%v) = %s, retryable %v, maybe sent %v; want %s, true, %v",
			err, got, retryable, channels.MaybeSent(err), reason, maybeSent)
	}
}
