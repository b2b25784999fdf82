package email

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
)

// pipeServer is a small SMTP server offering PIPELINING and CHUNKING whose
// replies the tests bend, to see what a pipelined batch makes of each
// failure: which messages it reports sent, refused or in doubt, and which
// the server really took.
type pipeServer struct {
	ln   net.Listener
	done chan struct{}
	mu   sync.Mutex
	took []taken // messages whose chunk was read whole and accepted
	conn int

	firstReplyDelay time.Duration                  // before a connection's first reply after EHLO
	rsetReply       func(conn, n int) string       // reply to a connection's n-th RSET ("" = 250)
	bdatReply       func(to string) string         // raw reply bytes to a BDAT LAST ("" = 250); the message counts as taken
	bdatRefuse      func(to string) string         // a refusal of the message ("" = none)
	bdatStall       func(to string, size int) bool // stop reading at this BDAT
	bdatCut         func(to string, size int) int  // >0: read this many bytes of the chunk, then hang up
}

type taken struct {
	to   string
	conn int
}

func newPipeServer(t *testing.T) *pipeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeServer{ln: ln, done: make(chan struct{})}
	var conns []net.Conn
	var cmu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns = append(conns, c)
			cmu.Unlock()
			s.mu.Lock()
			s.conn++
			id := s.conn
			s.mu.Unlock()
			go s.serve(c, id)
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	return s
}

func (s *pipeServer) config() Config {
	return Config{Host: "127.0.0.1", Port: s.ln.Addr().(*net.TCPAddr).Port, TLS: TLSNone,
		From: "crier@example.org", Timeout: 5 * time.Second}
}

// takenBy counts the messages to each address the server took.
func (s *pipeServer) takenBy() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[string]int{}
	for _, m := range s.took {
		n[m.to]++
	}
	return n
}

func (s *pipeServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

func (s *pipeServer) serve(c net.Conn, id int) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	first := true
	reply := func(line string) {
		if first && s.firstReplyDelay > 0 {
			time.Sleep(s.firstReplyDelay)
		}
		first = false
		_, _ = io.WriteString(c, line+"\r\n")
	}
	_, _ = io.WriteString(c, "220 pipe ESMTP\r\n")
	to, rsets := "", 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO":
			_, _ = io.WriteString(c, "250-pipe\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n")
		case "MAIL":
			to = ""
			reply("250 2.1.0 ok")
		case "RCPT":
			to = strings.Trim(strings.TrimPrefix(line, "RCPT TO:"), "<>")
			reply("250 2.1.5 ok")
		case "RSET":
			rsets++
			to = ""
			if s.rsetReply != nil {
				if a := s.rsetReply(id, rsets); a != "" {
					reply(a)
					if strings.HasPrefix(a, "421") {
						return
					}
					continue
				}
			}
			reply("250 2.0.0 ok")
		case "BDAT":
			size, _ := strconv.Atoi(strings.Fields(line)[1])
			if s.bdatStall != nil && s.bdatStall(to, size) {
				<-s.done
				return
			}
			if s.bdatCut != nil {
				if n := s.bdatCut(to, size); n > 0 {
					_, _ = io.CopyN(io.Discard, r, int64(n))
					return
				}
			}
			if _, err := io.CopyN(io.Discard, r, int64(size)); err != nil {
				return
			}
			if s.bdatRefuse != nil {
				if a := s.bdatRefuse(to); a != "" {
					reply(a)
					continue
				}
			}
			s.mu.Lock()
			s.took = append(s.took, taken{to, id})
			s.mu.Unlock()
			if s.bdatReply != nil {
				if raw := s.bdatReply(to); raw != "" {
					_, _ = io.WriteString(c, raw)
					continue
				}
			}
			reply("250 2.0.0 queued")
		case "QUIT":
			_, _ = io.WriteString(c, "221 bye\r\n")
			return
		default:
			reply("500 what")
		}
	}
}

// judged checks a batch's results against what the server took: a
// message reported sent was taken exactly once, a message in doubt at
// most once, and any other failure not at all, unless dup allows it.
func judged(t *testing.T, srv *pipeServer, res []channels.Result) {
	t.Helper()
	took := srv.takenBy()
	for i, r := range res {
		addr := fmt.Sprintf("person%d@example.gov", i+1)
		switch {
		case r.Err == nil && took[addr] != 1:
			t.Errorf("message %d reported sent; the server took it %d times", i+1, took[addr])
		case r.Err != nil && channels.MaybeSent(r.Err) && took[addr] > 1:
			t.Errorf("message %d in doubt; the server took it %d times", i+1, took[addr])
		case r.Err != nil && !channels.MaybeSent(r.Err) && took[addr] != 0:
			t.Errorf("message %d reported not sent (%v); the server took it %d times", i+1, r.Err, took[addr])
		}
	}
}

func bigMessage(m channels.Message, size int) channels.Message {
	m.Text = strings.Repeat("Referrals are down; use the paper process.\n", size/43)
	m.HTML = ""
	return m
}

// A write that times out part-way through a window (the server stops
// reading in the third, large message) still reads the replies to the two
// messages that went out whole: they are sent, once; the third, cut short,
// was not taken.
func TestSender_SendBatch_WindowWriteTimesOut(t *testing.T) {
	srv := newPipeServer(t)
	srv.bdatStall = func(_ string, size int) bool { return size > 4<<20 }
	cfg := srv.config()
	cfg.Timeout = 300 * time.Millisecond
	s := newSender(t, cfg)
	ms := batch(3)
	ms[2] = bigMessage(ms[2], 16<<20)
	res := s.SendBatch(t.Context(), ms)
	wantResults(t, res[:2], "ok", "ok")
	if res[2].Err == nil || channels.MaybeSent(res[2].Err) {
		t.Errorf("message 3: %v, want a failure not in doubt", res[2].Err)
	}
	judged(t, srv, res)
}

// The server hangs up part-way through the third message's chunk, after
// taking the first two of the same window: they are sent, the third was
// not taken and fails on its fresh connection the same way.
func TestSender_SendBatch_WindowCutMidChunk(t *testing.T) {
	srv := newPipeServer(t)
	srv.bdatCut = func(_ string, size int) int {
		if size > 4<<20 {
			return 1000
		}
		return 0
	}
	s := newSender(t, srv.config())
	ms := batch(3)
	ms[2] = bigMessage(ms[2], 16<<20)
	res := s.SendBatch(t.Context(), ms)
	net := string(channels.ReasonNetwork)
	wantResults(t, res, "ok", "ok", net)
	judged(t, srv, res)
}

// A first reply slower than the timeout, or the caller's deadline before
// it: the server is alive and working through the batch, so every
// message is in doubt, none sent twice.
func TestSender_SendBatch_NoReplyInTime(t *testing.T) {
	for _, tt := range []struct {
		name     string
		timeout  time.Duration
		deadline time.Duration
		reason   channels.Reason
	}{
		{"timeout", 200 * time.Millisecond, 0, channels.ReasonTimeout},
		{"caller's deadline", time.Minute, 200 * time.Millisecond, channels.ReasonTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newPipeServer(t)
			srv.firstReplyDelay = 500 * time.Millisecond
			cfg := srv.config()
			cfg.Timeout = tt.timeout
			s := newSender(t, cfg)
			ctx := t.Context()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			res := s.SendBatch(ctx, batch(3))
			r := string(tt.reason) + "?"
			wantResults(t, res, r, r, r)
			time.Sleep(700 * time.Millisecond) // the server goes on with what it read
			judged(t, srv, res)
			if srv.connections() != 1 {
				t.Errorf("%d connections, want 1: nothing goes again while it may have been sent", srv.connections())
			}
		})
	}
}

// An unreadable reply to the first message's BDAT (a stray line before
// it): the replies after cannot be matched to their commands, so no
// message is reported sent or refused on their strength, not even the
// second, which the server refused.
func TestSender_SendBatch_UnreadableReply(t *testing.T) {
	srv := newPipeServer(t)
	srv.bdatReply = func(to string) string {
		if to == "person1@example.gov" {
			return "OK\r\n250 2.0.0 queued\r\n"
		}
		return ""
	}
	srv.bdatRefuse = func(to string) string {
		if to == "person2@example.gov" {
			return "552 5.3.4 too big"
		}
		return ""
	}
	s := newSender(t, srv.config())
	res := s.SendBatch(t.Context(), batch(3))
	for i, r := range res {
		if r.Err == nil || !channels.MaybeSent(r.Err) {
			t.Errorf("message %d: %v, want in doubt", i+1, r.Err)
		}
	}
	judged(t, srv, res)
}

// 421 at the RSET ahead of the second message: the server is closing and
// takes nothing more, so the second and third go on a fresh connection.
func TestSender_SendBatch_ClosingAtRSET(t *testing.T) {
	srv := newPipeServer(t)
	srv.rsetReply = func(conn, n int) string {
		if conn == 1 && n == 1 {
			return "421 4.3.2 closing"
		}
		return ""
	}
	s := newSender(t, srv.config())
	res := s.SendBatch(t.Context(), batch(3))
	wantResults(t, res, "ok", "ok", "ok")
	judged(t, srv, res)
	if srv.connections() != 2 {
		t.Errorf("%d connections, want 2", srv.connections())
	}
}

// An RSET refused ahead of the second message: the server may be reading
// the stream out of step, so the second and third are in doubt, and the
// connection is not used again.
func TestSender_SendBatch_RSETRefused(t *testing.T) {
	srv := newPipeServer(t)
	srv.rsetReply = func(conn, n int) string {
		if conn == 1 && n == 1 {
			return "503 5.5.1 bad sequence of commands"
		}
		return ""
	}
	s := newSender(t, srv.config())
	res := s.SendBatch(t.Context(), batch(3))
	net := string(channels.ReasonNetwork)
	wantResults(t, res, "ok", net+"?", net+"?")
	judged(t, srv, res)
	wantResults(t, s.SendBatch(t.Context(), batch(1)), "ok")
	if srv.connections() != 2 {
		t.Errorf("%d connections, want 2: the out-of-step one is not reused", srv.connections())
	}
}

// failAfter accepts max bytes, then fails.
type failAfter struct{ n, max int }

func (f *failAfter) Write(b []byte) (int, error) {
	room := f.max - f.n
	if len(b) <= room {
		f.n += len(b)
		return len(b), nil
	}
	f.n += room
	return room, errors.New("broken pipe")
}

// A window's failed write says how many bytes reached the connection,
// through the connection's 64 KiB buffer and go-mail's 4 KiB one, for a
// window smaller than either, between them, and larger than both.
func TestFlushThrough_CountsWhatLeft(t *testing.T) {
	for _, size := range []int{3000, 4096, 4097, 60000, 200000} {
		fa := &failAfter{max: 1000}
		outer := bufio.NewWriterSize(flushThrough{bufio.NewWriter(fa)}, writeBuffer)
		nn, err := outer.Write(make([]byte, size))
		if err == nil {
			err = outer.Flush()
		}
		if err == nil {
			t.Fatalf("%d bytes: no error", size)
		}
		if out := nn - outer.Buffered(); out != fa.n {
			t.Errorf("%d bytes: counted %d as written, %d reached the connection", size, out, fa.n)
		}
	}
}
