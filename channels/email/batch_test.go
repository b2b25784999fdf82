package email

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

// batch is n messages to person1@example.gov and on, keyed b1 and on.
func batch(n int) []channels.Message {
	ms := make([]channels.Message, n)
	for i := range ms {
		ms[i] = message(fmt.Sprintf("b%d", i+1))
		ms[i].Address = fmt.Sprintf("person%d@example.gov", i+1)
	}
	return ms
}

// group is a message's MAIL FROM, RCPT TO and DATA as they go out
// together to the script server (which offers 8BITMIME).
func group(addr string) string {
	return "MAIL FROM:<crier@example.org> BODY=8BITMIME\r\nRCPT TO:<" + addr + ">\r\nDATA\r\n"
}

// streamOf is everything the client wrote on connection conn, in order.
func streamOf(srv *scriptServer, conn int) string { return strings.Join(wireOf(srv, conn), "") }

// wireOf is what the clients wrote on connection conn, cut wherever the
// server wrote.
func wireOf(srv *scriptServer, conn int) []string {
	var out []string
	for _, c := range srv.chunks() {
		if c.conn == conn {
			out = append(out, c.data)
		}
	}
	return out
}

// wantResults checks each result: "ok" for a receipt, otherwise the reason
// of a failure, with "?" appended when it may have been sent.
func wantResults(t *testing.T, res []channels.Result, want ...string) {
	t.Helper()
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	for i, r := range res {
		got := "ok"
		if r.Err != nil {
			reason, _, _ := channels.Classify(r.Err)
			got = string(reason)
			if channels.MaybeSent(r.Err) {
				got += "?"
			}
		} else if !strings.HasPrefix(r.Receipt.Status, "250") || r.Receipt.ProviderID == "" {
			got = fmt.Sprintf("receipt %+v", r.Receipt)
		}
		if got != want[i] {
			t.Errorf("message %d: %s (%v), want %s", i+1, got, r.Err, want[i])
		}
	}
}

// slotsFree fails the test unless every pool slot has been given back.
func slotsFree(t *testing.T, s *Sender) {
	t.Helper()
	if n := len(s.pool.slots); n != 0 {
		t.Errorf("%d pool slots still taken", n)
	}
}

// With PIPELINING each message's data and "." go out with the next
// message's commands, and every result is the receipt Send gives.
func TestSender_SendBatch_PipelinesAcrossMessages(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME")
	now := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	s := newSender(t, srv.config(), WithNow(func() time.Time { return now }))
	ms := batch(3)
	ms[2].Thread = "<opened@example.org>"
	var receipts []channels.Receipt
	for _, m := range ms {
		receipts = append(receipts, send(t, s, m))
	}
	res := s.SendBatch(t.Context(), ms)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i, r := range res {
		if r.Err != nil || r.Receipt != receipts[i] {
			t.Errorf("message %d: %+v, %v; want %+v as Send gave", i+1, r.Receipt, r.Err, receipts[i])
		}
	}
	msgs := srv.messages()
	if len(msgs) != 6 {
		t.Fatalf("server received %d messages, want 6", len(msgs))
	}
	data := func(i int) string { return string(msgs[i]) + ".\r\n" }
	for i := range 3 {
		if data(i+3) != data(i) {
			t.Errorf("message %d in the batch differs from the one Send wrote:\n%s\nwant\n%s", i+1, data(i+3), data(i))
		}
	}
	a1, a2, a3 := "person1@example.gov", "person2@example.gov", "person3@example.gov"
	want := []string{
		"EHLO example.org\r\n",
		// One at a time: two round trips each.
		group(a1), data(0), group(a2), data(1), group(a3), data(2),
		// The batch: one round trip each.
		group(a1), data(0) + group(a2), data(1) + group(a3), data(2),
		"QUIT\r\n",
	}
	if got := wireOf(srv, 1); !slices.Equal(got, want) {
		t.Errorf("wire:\n%q\nwant\n%q", got, want)
	}
	if srv.connections() != 1 {
		t.Errorf("%d connections, want 1", srv.connections())
	}
}

// A refused recipient fails its own message only. A server that then
// answers DATA with a refusal gets RSET ahead of the next group; one that
// answers 354 is out of step and the rest go on a fresh connection.
func TestSender_SendBatch_RefusedRecipient(t *testing.T) {
	a1, a2, a3 := "person1@example.gov", "person2@example.gov", "person3@example.gov"
	tests := []struct {
		name   string
		strict bool
		wire   map[int][]string // by connection
	}{
		{"DATA refused", true, map[int][]string{1: {
			"EHLO example.org\r\n", group(a1), "1" + group(a2), "RSET\r\n" + group(a3), "3", "QUIT\r\n"}}},
		{"DATA accepted after the refusal", false, map[int][]string{
			1: {"EHLO example.org\r\n", group(a1), "1" + group(a2)},
			2: {"EHLO example.org\r\n", group(a3), "3", "QUIT\r\n"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME")
			if tt.strict {
				srv.setStrict()
			}
			srv.setRcptTo(a2, "550 5.1.1 no such user")
			s := newSender(t, srv.config())
			res := s.SendBatch(t.Context(), batch(3))
			wantResults(t, res, "ok", string(channels.ReasonBadAddress), "ok")
			if _, retryable, _ := channels.Classify(res[1].Err); retryable {
				t.Errorf("refused recipient: %v, want a permanent failure", res[1].Err)
			}
			slotsFree(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			msgs := srv.messages()
			if len(msgs) != 2 {
				t.Fatalf("server received %d messages, want 2", len(msgs))
			}
			// The messages stand in for themselves as "1" and "3".
			stand := strings.NewReplacer(string(msgs[0])+".\r\n", "1", string(msgs[1])+".\r\n", "3")
			for conn, want := range tt.wire {
				var got []string
				for _, c := range wireOf(srv, conn) {
					got = append(got, stand.Replace(c))
				}
				if !slices.Equal(got, want) {
					t.Errorf("wire on connection %d:\n%q\nwant\n%q", conn, got, want)
				}
			}
			if srv.connections() != len(tt.wire) {
				t.Errorf("%d connections, want %d", srv.connections(), len(tt.wire))
			}
		})
	}
	t.Run("real server", func(t *testing.T) {
		p := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(func(stage channeltest.SMTPStage, addr string) error {
			if stage == channeltest.SMTPStageRcpt && addr == a2 {
				return channeltest.SMTPReply(550, "5.1.1", "no such user")
			}
			return nil
		}))
		s := newSender(t, peerConfig(p))
		wantResults(t, s.SendBatch(t.Context(), batch(3)), "ok", string(channels.ReasonBadAddress), "ok")
		wantPeerGot(t, p, a1, a3)
	})
}

// A connection lost after the second message's "." went out: the first
// is sent, the second may have been, and the third, whose commands went
// out with that ".", is sent on a new connection.
func TestSender_SendBatch_DroppedAfterMessage(t *testing.T) {
	srv := newScriptServer(t, hangUp, "PIPELINING", "8BITMIME")
	srv.setOKFirst(1)
	s := newSender(t, srv.config())
	res := s.SendBatch(t.Context(), batch(3))
	wantResults(t, res, "ok", string(channels.ReasonNetwork)+"?", "ok")
	slotsFree(t, s)
	if n := len(srv.messages()); n != 3 || srv.connections() != 2 {
		t.Errorf("server received %d messages on %d connections, want 3 on 2", n, srv.connections())
	}
	if w := wireOf(srv, 1); len(w) == 0 || !strings.HasSuffix(w[len(w)-1], ".\r\n"+group("person3@example.gov")) {
		t.Errorf("first connection's wire ends %q, want the second message's \".\" with the third's commands", w[len(w)-1:])
	}
	if w := wireOf(srv, 2); len(w) < 2 || w[1] != group("person3@example.gov") {
		t.Errorf("second connection's wire %q, want the third message only", w)
	}
}

// A pooled connection the server dropped while idle costs a redial: the
// whole batch is sent on the new one.
func TestSender_SendBatch_RedialsStaleConnection(t *testing.T) {
	tests := []struct {
		name string
		opts []channeltest.SMTPOption
		drop func(t *testing.T, p *channeltest.SMTPPeer)
	}{
		{"dropped silently", nil, func(_ *testing.T, p *channeltest.SMTPPeer) { p.DropConnections() }},
		{"idle timeout with 421", []channeltest.SMTPOption{channeltest.SMTPIdleTimeout(300 * time.Millisecond)},
			func(t *testing.T, p *channeltest.SMTPPeer) { p.WaitClosed(t, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := channeltest.NewSMTPPeer(t, tt.opts...)
			s := newSender(t, peerConfig(p))
			send(t, s, message("before"))
			tt.drop(t, p)
			wantResults(t, s.SendBatch(t.Context(), batch(3)), "ok", "ok", "ok")
			slotsFree(t, s)
			if p.Count() != 4 || p.Connections() != 2 {
				t.Errorf("peer got %d messages on %d connections, want 4 on 2", p.Count(), p.Connections())
			}
			conns := map[int]int{}
			for _, m := range p.Messages() {
				conns[m.Conn]++
			}
			if conns[2] != 3 {
				t.Errorf("messages per connection %v, want the batch's 3 on connection 2", conns)
			}
		})
	}
	t.Run("without pipelining", func(t *testing.T) {
		srv := newScriptServer(t, replyOK, "8BITMIME")
		s := newSender(t, srv.config())
		send(t, s, message("before"))
		srv.drop()
		wantResults(t, s.SendBatch(t.Context(), batch(3)), "ok", "ok", "ok")
		if n := len(srv.messages()); n != 4 || srv.connections() != 2 {
			t.Errorf("server received %d messages on %d connections, want 4 on 2", n, srv.connections())
		}
	})
}

// A server that closes the connection once it has answered a message:
// the messages pipelined behind that one were written before any reply
// came, so they are in doubt (this peer even takes them from what it had
// already read, with no reply). A message whose write failed because the
// connection was already gone goes on a fresh connection. Nothing is
// reported sent that the server did not take, and nothing is lost.
func TestSender_SendBatch_ClosedAfterEachMessage(t *testing.T) {
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPDropAfter(1))
	s := newSender(t, peerConfig(p))
	res := s.SendBatch(t.Context(), batch(3))
	slotsFree(t, s)
	taken := map[string]int{}
	for _, m := range p.Messages() {
		taken[m.To[0]]++
	}
	for i, r := range res {
		addr := fmt.Sprintf("person%d@example.gov", i+1)
		switch {
		case r.Err == nil:
			if taken[addr] != 1 {
				t.Errorf("message %d: sent, but the peer took it %d times", i+1, taken[addr])
			}
		case channels.MaybeSent(r.Err):
			if i == 0 || taken[addr] > 1 {
				t.Errorf("message %d: %v, and the peer took it %d times; want message 1 sent, the others taken at most once", i+1, r.Err, taken[addr])
			}
		default:
			t.Errorf("message %d: %v, want sent or in doubt", i+1, r.Err)
		}
	}
}

// A server that drops every connection before taking anything: the first
// message fails as Send would say, the rest get one more connection and
// then the same failure. Nothing is in doubt.
func TestSender_SendBatch_LostBeforeAnything(t *testing.T) {
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(func(stage channeltest.SMTPStage, _ string) error {
		if stage == channeltest.SMTPStageMail {
			return channeltest.ErrSMTPDrop
		}
		return nil
	}))
	s := newSender(t, peerConfig(p))
	net := string(channels.ReasonNetwork)
	res := s.SendBatch(t.Context(), batch(4))
	wantResults(t, res, net, net, net, net)
	for i, r := range res {
		if _, retryable, _ := channels.Classify(r.Err); !retryable {
			t.Errorf("message %d: %v, want a temporary failure", i+1, r.Err)
		}
	}
	slotsFree(t, s)
	if p.Connections() != 2 {
		t.Errorf("%d connections, want 2 (one replacement)", p.Connections())
	}
}

// Without PIPELINING the batch goes one command at a time on one
// connection, with RSET after the refused message.
func TestSender_SendBatch_WithoutPipelining(t *testing.T) {
	srv := newScriptServer(t, replyOK, "8BITMIME")
	srv.setRcptTo("person2@example.gov", "550 5.1.1 no such user")
	s := newSender(t, srv.config())
	ms := batch(3)
	ms[2].Thread = "<opened@example.org>"
	res := s.SendBatch(t.Context(), ms)
	wantResults(t, res, "ok", string(channels.ReasonBadAddress), "ok")
	slotsFree(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := stepwiseLines(t, srv)
	mail := "MAIL FROM:<crier@example.org> BODY=8BITMIME"
	want := []string{"EHLO example.org",
		mail, "RCPT TO:<person1@example.gov>", "DATA",
		mail, "RCPT TO:<person2@example.gov>", "RSET",
		mail, "RCPT TO:<person3@example.gov>", "DATA", "QUIT"}
	if !slices.Equal(lines, want) {
		t.Errorf("server received %q, want %q", lines, want)
	}
	msgs := srv.messages()
	if len(msgs) != 2 || srv.connections() != 1 {
		t.Fatalf("server received %d messages on %d connections, want 2 on 1", len(msgs), srv.connections())
	}
	for i, j := range []int{0, 2} {
		r := res[j].Receipt
		id := s.messageID(ms[j].Key)
		if r.ProviderID != "<"+id+">" || r.Status != "250 2.0.0 queued as 42" || !strings.Contains(string(msgs[i]), id) {
			t.Errorf("message %d: receipt %+v, want its Message-ID <%s> and the final reply", j+1, r, id)
		}
	}
	if res[0].Receipt.Thread != res[0].Receipt.ProviderID || res[2].Receipt.Thread != "<opened@example.org>" {
		t.Errorf("threads %q and %q, want the first's own ID and the third's thread",
			res[0].Receipt.Thread, res[2].Receipt.Thread)
	}
}

// A message that cannot be composed gets its own failure; the others
// are sent on one connection, and a batch of such messages opens none.
func TestSender_SendBatch_BadMessages(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	s := newSender(t, peerConfig(p))
	ms := batch(4)
	ms[1].Address = "not an address"
	ms[2].Key = ""
	wantResults(t, s.SendBatch(t.Context(), ms), "ok",
		string(channels.ReasonBadAddress), string(channels.ReasonRejected), "ok")
	if p.Count() != 2 || p.Connections() != 1 {
		t.Errorf("peer got %d messages on %d connections, want 2 on 1", p.Count(), p.Connections())
	}
	wantResults(t, s.SendBatch(t.Context(), ms[1:3]),
		string(channels.ReasonBadAddress), string(channels.ReasonRejected))
	if len(s.SendBatch(t.Context(), nil)) != 0 || p.Connections() != 1 {
		t.Errorf("peer saw %d connections, want no more for batches with nothing to send", p.Connections())
	}
	slotsFree(t, s)
}

// The caller's deadline ends the batch: the message whose reply was
// awaited may have been sent, the rest were not, and no new connection
// is opened for them.
func TestSender_SendBatch_ContextDeadline(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			ext := []string{"8BITMIME"}
			if pipelining {
				ext = append(ext, "PIPELINING")
			}
			srv := newScriptServer(t, silent, ext...)
			c := srv.config()
			c.Timeout, c.PoolSize = time.Minute, 1
			s := newSender(t, c)
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			to := string(channels.ReasonTimeout)
			res := s.SendBatch(ctx, batch(3))
			wantResults(t, res, to+"?", to, to)
			slotsFree(t, s)
			if n := len(srv.messages()); n != 1 || srv.connections() != 1 {
				t.Errorf("server received %d messages on %d connections, want 1 on 1", n, srv.connections())
			}
		})
	}
}

// The configured timeout is per message: a server that stops answering
// mid-batch fails the message in doubt, and the rest go on a new
// connection.
func TestSender_SendBatch_Timeout(t *testing.T) {
	srv := newScriptServer(t, silent, "PIPELINING", "8BITMIME")
	srv.setOKFirst(1)
	c := srv.config()
	c.Timeout = 300 * time.Millisecond
	s := newSender(t, c)
	res := s.SendBatch(t.Context(), batch(3))
	wantResults(t, res, "ok", string(channels.ReasonTimeout)+"?", "ok")
	slotsFree(t, s)
	if n := len(srv.messages()); n != 3 || srv.connections() != 2 {
		t.Errorf("server received %d messages on %d connections, want 3 on 2", n, srv.connections())
	}
}

// A server that echoes the password back must not get it into a batch's
// results either.
func TestSender_SendBatch_ScrubsEchoedPassword(t *testing.T) {
	c, _ := refusing(channeltest.SMTPStageRcpt,
		channeltest.SMTPReply(550, "5.1.1", "no such user; you sent "+testPassword))(t)
	s := newSender(t, c)
	for _, r := range s.SendBatch(t.Context(), batch(2)) {
		if r.Err == nil {
			t.Fatal("a refused message has no error")
		}
		assertNoSecret(t, r.Err)
	}
}

// Batches from many goroutines share the pool without losing a message
// or passing its size.
func TestSender_SendBatch_Concurrent(t *testing.T) {
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPLatency(time.Millisecond))
	s := newSender(t, peerConfig(p, func(c *Config) { c.PoolSize = 2 }))
	const workers, size = 6, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*size)
	for w := range workers {
		wg.Go(func() {
			ms := batch(size)
			for i := range ms {
				ms[i].Key = fmt.Sprintf("w%d-%d", w, i)
			}
			for _, r := range s.SendBatch(t.Context(), ms) {
				if r.Err != nil {
					errs <- r.Err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	slotsFree(t, s)
	if p.Count() != workers*size || p.Connections() > 2 {
		t.Errorf("peer got %d messages on %d connections, want %d on at most 2", p.Count(), p.Connections(), workers*size)
	}
	keys := map[string]bool{}
	for _, m := range p.Messages() {
		keys[m.Header.Get("X-Crier-Delivery")] = true
	}
	if len(keys) != workers*size {
		t.Errorf("peer got %d distinct messages, want %d", len(keys), workers*size)
	}
}
