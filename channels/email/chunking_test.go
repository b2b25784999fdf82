package email

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

// chunked is a message's MAIL FROM, RCPT TO and BDAT LAST with the
// message, as they go out together to the script server (which offers
// 8BITMIME).
func chunked(addr string, msg []byte) string {
	return "MAIL FROM:<crier@example.org> BODY=8BITMIME\r\nRCPT TO:<" + addr + ">\r\nBDAT " +
		strconv.Itoa(len(msg)) + " LAST\r\n" + string(msg)
}

// splitChunks cuts what a client wrote into its command lines and BDAT
// chunks, failing the test unless every BDAT size is exactly the bytes
// that follow it before the next command or the end.
func splitChunks(t *testing.T, wire string) (lines []string, chunks []string) {
	t.Helper()
	for wire != "" {
		line, rest, ok := strings.Cut(wire, "\r\n")
		if !ok {
			t.Fatalf("wire ends inside a command: %q", wire)
		}
		lines = append(lines, line)
		wire = rest
		if !strings.HasPrefix(line, "BDAT ") {
			continue
		}
		size, last, _ := strings.Cut(strings.TrimPrefix(line, "BDAT "), " ")
		n, err := strconv.Atoi(size)
		if err != nil || last != "LAST" {
			t.Fatalf("command %q, want BDAT <size> LAST", line)
		}
		if n > len(wire) {
			t.Fatalf("%s, but only %d bytes follow", line, len(wire))
		}
		chunks = append(chunks, wire[:n])
		wire = wire[n:]
	}
	return lines, chunks
}

// unstuff is a message sent with DATA as the server stores it: the dot
// that stuffing added at the start of a line taken away.
func unstuff(data []byte) []byte {
	var out []byte
	for line := range bytes.Lines(data) {
		out = append(out, bytes.TrimPrefix(line, []byte("."))...)
	}
	return out
}

// With PIPELINING and CHUNKING a message goes out in one write: MAIL
// FROM, RCPT TO, "BDAT <size> LAST" and the message, neither dot-stuffed
// nor ended by ".", exactly what a server stores of the same message sent
// with DATA. That holds for a shared content, from the cache too, and for
// a message go-mail composes whole, multipart or not.
func TestSender_Send_Chunking(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME", "CHUNKING", "SMTPUTF8")
	dataSrv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME", "SMTPUTF8")
	now := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	clock := WithNow(func() time.Time { return now })
	s := newSender(t, srv.config(), clock)
	d := newSender(t, dataSrv.config(), clock)

	m := message("k1")
	m.Text = ".\n.hidden\n..two\nend."
	m.HTML = "<p>\n.x</p>"
	cached := m
	cached.Key = "k2"
	whole := message("k3") // text only: go-mail ends it without a line break
	whole.Address, whole.HTML = "siân@example.gov", ""
	textOnly := message("k4")
	textOnly.HTML = ""
	ms := []channels.Message{m, cached, whole, textOnly}
	for _, m := range ms {
		r := send(t, s, m)
		if r.Status != "250 2.0.0 queued as 42" {
			t.Errorf("receipt status %q, want the reply to BDAT", r.Status)
		}
		send(t, d, m)
	}
	for _, x := range []*Sender{s, d} {
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}

	got, sent := srv.messages(), dataSrv.messages()
	if len(got) != 4 || len(sent) != 4 {
		t.Fatalf("servers received %d and %d messages, want 4 each", len(got), len(sent))
	}
	for i := range got {
		if want := unstuff(sent[i]); sameBoundary(got[i]) != sameBoundary(want) {
			t.Errorf("message %d with BDAT:\n%q\nwant what DATA delivers:\n%q", i+1, got[i], want)
		}
	}
	if !bytes.Contains(got[0], []byte("\r\n.hidden\r\n")) || bytes.HasSuffix(got[0], []byte("\r\n.\r\n")) {
		t.Errorf("message 1 is dot-stuffed or ended by \".\":\n%q", got[0])
	}
	for _, i := range []int{2, 3} {
		if !bytes.HasSuffix(got[i], []byte("\r\n")) {
			t.Errorf("message %d does not end with a line break: %q", i+1, got[i][max(0, len(got[i])-20):])
		}
	}
	want := []string{
		"EHLO example.org\r\n",
		chunked("minister@example.gov", got[0]),
		chunked("minister@example.gov", got[1]),
		strings.Replace(chunked("siân@example.gov", got[2]), "BODY=8BITMIME", "BODY=8BITMIME SMTPUTF8", 1),
		chunked("minister@example.gov", got[3]),
		"QUIT\r\n",
	}
	wire := wireOf(srv, 1)
	if !slices.Equal(wire, want) {
		t.Errorf("wire:\n%q\nwant\n%q", wire, want)
	}
	for _, w := range wire {
		splitChunks(t, w)
	}
}

// A batch writes all its messages, each after the first behind an RSET,
// before reading their replies: one round trip for the batch, with the
// bytes and the receipts Send gives.
func TestSender_SendBatch_Chunking(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME", "CHUNKING")
	now := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	s := newSender(t, srv.config(), WithNow(func() time.Time { return now }))
	ms := batch(3)
	ms[2].Thread = "<opened@example.org>"
	var receipts []channels.Receipt
	for _, m := range ms {
		receipts = append(receipts, send(t, s, m))
	}
	res := s.SendBatch(t.Context(), ms)
	slotsFree(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i, r := range res {
		if r.Err != nil || r.Receipt != receipts[i] {
			t.Errorf("message %d: %+v, %v; want %+v as Send gave", i+1, r.Receipt, r.Err, receipts[i])
		}
	}
	msgs := srv.messages()
	if len(msgs) != 6 || srv.connections() != 1 {
		t.Fatalf("server received %d messages on %d connections, want 6 on 1", len(msgs), srv.connections())
	}
	a1, a2, a3 := "person1@example.gov", "person2@example.gov", "person3@example.gov"
	// Send waits for each message's replies; SendBatch writes them all
	// first, each after the first behind an RSET. How the bytes were cut
	// into reads depends on timing, so the stream is compared whole.
	want := "EHLO example.org\r\n" +
		chunked(a1, msgs[0]) + chunked(a2, msgs[1]) + chunked(a3, msgs[2]) + // Send
		chunked(a1, msgs[0]) + "RSET\r\n" + chunked(a2, msgs[1]) + "RSET\r\n" + chunked(a3, msgs[2]) + // SendBatch
		"QUIT\r\n"
	wire := streamOf(srv, 1)
	if wire != want {
		t.Errorf("wire:\n%q\nwant\n%q", wire, want)
	}
	splitChunks(t, wire)
	if !bytes.Contains(msgs[2], []byte("In-Reply-To: <opened@example.org>\r\n")) {
		t.Errorf("the threaded message has no In-Reply-To:\n%s", msgs[2])
	}
}

// A refused transaction fails its own message only: the server refuses
// the BDAT after a refused recipient and drops its chunk, and the RSET
// ahead of the next message starts it clean. A refused message is
// classified by its code. A server that accepts a message although its
// recipient was refused is out of step: the batch's replies are read, but
// the connection is not used again. A server that says it is closing
// takes nothing after: the rest go on a fresh connection.
func TestSender_SendBatch_ChunkingRefused(t *testing.T) {
	a1, a2, a3 := "person1@example.gov", "person2@example.gov", "person3@example.gov"
	tests := []struct {
		name    string
		setup   func(*scriptServer)
		result  string // message 2's
		code    string
		conns   int
		lenient bool // the server does not refuse BDAT without recipients
	}{
		{"recipient refused", func(s *scriptServer) { s.setRcptTo(a2, "550 5.1.1 no such user") },
			string(channels.ReasonBadAddress), "550", 1, false},
		{"recipient refused, BDAT accepted", func(s *scriptServer) { s.setRcptTo(a2, "550 5.1.1 no such user") },
			string(channels.ReasonBadAddress), "550", 1, true},
		{"message too big", func(s *scriptServer) { s.setBdatTo(a2, "552 5.3.4 message too big") },
			string(channels.ReasonRejected), "552", 1, false},
		{"message refused for now", func(s *scriptServer) { s.setBdatTo(a2, "451 4.3.0 try again later") },
			string(channels.ReasonServer), "451", 1, false},
		{"closing", func(s *scriptServer) { s.setBdatTo(a2, "421 4.3.2 shutting down") },
			string(channels.ReasonServer), "421", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME", "CHUNKING")
			if !tt.lenient {
				srv.setStrict()
			}
			tt.setup(srv)
			s := newSender(t, srv.config())
			res := s.SendBatch(t.Context(), batch(3))
			wantResults(t, res, "ok", tt.result, "ok")
			if channels.Code(res[1].Err) != tt.code {
				t.Errorf("message 2: code %q, want %q (%v)", channels.Code(res[1].Err), tt.code, res[1].Err)
			}
			slotsFree(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if srv.connections() != tt.conns {
				t.Errorf("%d connections, want %d", srv.connections(), tt.conns)
			}
			msgs := srv.messages()
			first, third := chunked(a1, msgs[0]), chunked(a3, msgs[len(msgs)-1])
			second := "RSET\r\nMAIL FROM:<crier@example.org> BODY=8BITMIME\r\nRCPT TO:<" + a2 + ">\r\nBDAT "
			wire := streamOf(srv, 1)
			if !strings.HasPrefix(wire, "EHLO example.org\r\n"+first+second) {
				t.Fatalf("wire on connection 1:\n%q\nwant the second message behind an RSET after the first", wire)
			}
			splitChunks(t, wire)
			if tt.conns == 1 {
				// The third went out behind the second, before its replies.
				// The out-of-step connection of the lenient server is dropped,
				// not pooled, so it gets no QUIT.
				end := "RSET\r\n" + third + "QUIT\r\n"
				if tt.lenient {
					end = "RSET\r\n" + third
				}
				if !strings.HasSuffix(wire, end) {
					t.Errorf("wire on connection 1:\n%q\nwant it to end with\n%q", wire, end)
				}
				return
			}
			if want := "EHLO example.org\r\n" + third + "QUIT\r\n"; streamOf(srv, 2) != want {
				t.Errorf("wire on connection 2:\n%q\nwant\n%q", streamOf(srv, 2), want)
			}
		})
	}
	t.Run("real server", func(t *testing.T) {
		const a4 = "person4@example.gov"
		p := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(func(stage channeltest.SMTPStage, addr string) error {
			switch {
			case stage == channeltest.SMTPStageRcpt && addr == a2:
				return channeltest.SMTPReply(550, "5.1.1", "no such user")
			case stage == channeltest.SMTPStageData && addr == a3:
				return channeltest.SMTPReply(554, "5.7.1", "message refused")
			}
			return nil
		}))
		s := newSender(t, peerConfig(p))
		wantResults(t, s.SendBatch(t.Context(), batch(4)),
			"ok", string(channels.ReasonBadAddress), string(channels.ReasonRejected), "ok")
		wantPeerGot(t, p, a1, a4)
	})
}

// A connection lost after the whole chunk went out, before the reply to
// BDAT, may have delivered the message; a refusal of it did not.
func TestSender_Send_ChunkingInDoubt(t *testing.T) {
	tests := []struct {
		name      string
		after     afterMessage
		ctx       time.Duration // a caller's deadline, 0 for none
		reason    channels.Reason
		maybeSent bool
	}{
		{"hung up after the chunk", hangUp, 0, channels.ReasonNetwork, true},
		{"silent after the chunk past the timeout", silent, 0, channels.ReasonTimeout, true},
		{"caller's deadline after the chunk", silent, 200 * time.Millisecond, channels.ReasonTimeout, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.after, "PIPELINING", "CHUNKING")
			sendInDoubt(t, srv, tt.ctx, tt.reason, tt.maybeSent)
			if len(srv.messages()) != 1 || srv.connections() != 1 {
				t.Errorf("server received %d messages on %d connections, want 1 on 1", len(srv.messages()), srv.connections())
			}
		})
	}
	t.Run("batch", func(t *testing.T) {
		// The server takes the first message, then hangs up after the
		// second's chunk. The third was written behind the second before
		// any reply came, so it is in doubt too: a server could have read
		// and accepted it. Only if its write failed (the hang-up came
		// first) does it go on a fresh connection.
		srv := newScriptServer(t, hangUp, "PIPELINING", "8BITMIME", "CHUNKING")
		srv.setOKFirst(1)
		s := newSender(t, srv.config())
		res := s.SendBatch(t.Context(), batch(3))
		slotsFree(t, s)
		net := string(channels.ReasonNetwork)
		msgs := srv.messages()
		switch srv.connections() {
		case 1:
			wantResults(t, res, "ok", net+"?", net+"?")
			if len(msgs) != 2 {
				t.Errorf("server received %d messages, want 2", len(msgs))
			}
		case 2:
			wantResults(t, res, "ok", net+"?", "ok")
			if w := streamOf(srv, 2); len(msgs) != 3 || !strings.HasPrefix(w, "EHLO example.org\r\n"+chunked("person3@example.gov", msgs[2])) {
				t.Errorf("second connection's wire %q, want the third message", w)
			}
		default:
			t.Fatalf("%d connections, want 1 or 2", srv.connections())
		}
	})
}

// A connection lost while the chunk is being written cannot have
// delivered the message: the server takes no part of a chunk.
func TestSender_Send_ChunkingCutMidChunk(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING", "CHUNKING")
	srv.setCutAt(1000)
	s := newSender(t, srv.config())
	m := message("k")
	// Far more than the socket buffers hold, so the write is cut short.
	m.Text = strings.Repeat("Referrals are down; use the paper process.\n", 8<<20/43)
	m.HTML = ""
	check := func(what string, err error) {
		t.Helper()
		reason, retryable, _ := channels.Classify(err)
		if reason != channels.ReasonNetwork || !retryable || channels.MaybeSent(err) {
			t.Errorf("%s: Classify(%.200v) = %s, retryable %v, maybe sent %v; want network, true, false",
				what, err, reason, retryable, channels.MaybeSent(err))
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("%s: %.200v, want a failed write", what, err)
		}
	}
	_, err := s.Send(t.Context(), m)
	check("Send", err)

	ms := []channels.Message{m, m}
	ms[1].Key = "k2"
	for i, r := range s.SendBatch(t.Context(), ms) {
		check(fmt.Sprintf("SendBatch message %d", i+1), r.Err)
	}
	slotsFree(t, s)
	// Send's connection, then the batch's and its one replacement.
	if len(srv.messages()) != 0 || srv.connections() != 3 {
		t.Errorf("server received %d messages on %d connections, want 0 on 3", len(srv.messages()), srv.connections())
	}
}

// A server that offers CHUNKING without PIPELINING gets DATA, one command
// at a time.
func TestSender_Send_ChunkingWithoutPipelining(t *testing.T) {
	srv := newScriptServer(t, replyOK, "8BITMIME", "CHUNKING")
	s := newSender(t, srv.config())
	send(t, s, message("k1"))
	wantResults(t, s.SendBatch(t.Context(), batch(2)), "ok", "ok")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := stepwiseLines(t, srv)
	mail := "MAIL FROM:<crier@example.org> BODY=8BITMIME"
	want := []string{"EHLO example.org",
		mail, "RCPT TO:<minister@example.gov>", "DATA",
		mail, "RCPT TO:<person1@example.gov>", "DATA",
		mail, "RCPT TO:<person2@example.gov>", "DATA", "QUIT"}
	if !slices.Equal(lines, want) {
		t.Errorf("server received %q, want %q", lines, want)
	}
}

// A real server (go-smtp, which offers CHUNKING) stores a message sent
// with BDAT exactly as it stores the same message sent with DATA: Welsh
// text, an HTML alternative, threading and lines that begin with a dot.
func TestSender_Send_ChunkingSameAsData(t *testing.T) {
	p := channeltest.NewSMTPPeer(t)
	now := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	clock := WithNow(func() time.Time { return now })
	chunks := newSender(t, peerConfig(p), clock)
	data := newSender(t, peerConfig(p), clock)
	data.pool.noChunking = true

	m := message("brief/2025-03-04T08:00/sub-17/email")
	m.Subject = "Diweddariad: gwasanaethau presgripsiwn brys i lawr ledled Cymru — ŵyl ŷd"
	m.Text = "Defnyddiwch bresgripsiynau papur.\n.\n.cudd\n..dau\nŵ ŷ â ê î ô û\ndiwedd."
	m.HTML = "<p>Mae atgyfeiriadau <b>i lawr</b>.</p>\n.<p>ŵ ŷ</p>"
	m.Thread = "<0123456789abcdef@example.org>"
	for _, s := range []*Sender{chunks, data} {
		send(t, s, m)
	}
	for s, want := range map[*Sender]bool{chunks: true, data: false} {
		if len(s.pool.idle) != 1 || s.pool.idle[0].chunking != want {
			t.Fatalf("a sender's connection sends with BDAT: %v, want %v", !want, want)
		}
	}

	got := p.Messages()
	if len(got) != 2 {
		t.Fatalf("peer got %d messages, want 2", len(got))
	}
	bdat, viaData := got[0], got[1]
	if sameBoundary(bdat.Data) != sameBoundary(viaData.Data) {
		t.Errorf("stored with BDAT:\n%s\nwith DATA:\n%s", bdat.Data, viaData.Data)
	}
	for _, rec := range got {
		msg, err := mail.ReadMessage(bytes.NewReader(rec.Data))
		if err != nil {
			t.Fatal(err)
		}
		h := msg.Header
		subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
		if err != nil || subject != m.Subject || h.Get("In-Reply-To") != m.Thread || h.Get("References") != m.Thread ||
			h.Get("Message-Id") != "<"+chunks.messageID(m.Key)+">" {
			t.Errorf("header %v (subject %q, %v), want the message's", h, subject, err)
		}
		body, err := parts(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		if body["text/plain"] != m.Text || body["text/html"] != m.HTML {
			t.Errorf("parts = %q, want text %q and html %q", body, m.Text, m.HTML)
		}
	}
}

// crlf gives exactly what a server stores of a message sent with DATA,
// and stuffing it gives what stuffing the message gives; a message with
// CRLF line endings throughout comes back as it is.
func TestCRLF(t *testing.T) {
	stuff := func(b []byte) string {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		dw := textproto.NewWriter(bw).DotWriter()
		_, _ = dw.Write(b)
		_ = dw.Close()
		return buf.String()
	}
	check := func(in []byte) {
		t.Helper()
		got := crlf(in)
		data := stuff(in)
		if s := stuff(got); s != data {
			t.Fatalf("crlf(%q) = %q, stuffed %q; want %q", in, got, s, data)
		}
		if stored := storedData(data); string(got) != stored {
			t.Fatalf("crlf(%q) = %q, want %q as a server stores it", in, got, stored)
		}
	}
	// Every string of up to 8 of these bytes, then longer random ones.
	const alphabet = "\r\n.a"
	for n := range 9 {
		total := 1 << (2 * n)
		for k := range total {
			b := make([]byte, n)
			for i := range b {
				b[i] = alphabet[(k>>(2*i))&3]
			}
			check(b)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = alphabet[r.IntN(4)]
		}
		check(b)
	}
	fine := []byte("Subject: x\r\n\r\n.line\r\n\r\nend\r\n")
	if got := crlf(fine); &got[0] != &fine[0] || len(got) != len(fine) {
		t.Errorf("crlf copied a message that needs no change")
	}
}

// storedData is what go-smtp's DATA reader makes of data, a message
// stuffed and ended by ".": its state machine, which keeps CRLF.
func storedData(data string) string {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		inLine
	)
	var out []byte
	state := beginLine
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch state {
		case beginLine:
			if c == '.' {
				state = dot
				continue
			}
			state = inLine
			if c == '\r' {
				state = cr
			}
		case dot:
			if c == '\r' {
				state = dotCR
				continue
			}
			state = inLine
		case dotCR:
			if c == '\n' {
				return string(out) // the end of the message
			}
			state = inLine
		case cr:
			state = inLine
			if c == '\n' {
				state = beginLine
			}
		case inLine:
			if c == '\r' {
				state = cr
			}
		}
		out = append(out, c)
	}
	return "no end of data in " + strconv.Quote(data)
}

// Large messages go out in windows of about a megabyte, one after the
// other on the same connection, each after the batch's first behind an
// RSET: the server receives the same stream as for small ones.
func TestSender_SendBatch_ChunkingLargeMessagesInWindows(t *testing.T) {
	srv := newScriptServer(t, replyOK, "PIPELINING", "8BITMIME", "CHUNKING")
	s := newSender(t, srv.config())
	ms := batch(3)
	for i := range ms {
		ms[i].Text = strings.Repeat("Referrals are down; use the paper process.\n", 600<<10/43)
		ms[i].HTML = ""
	}
	wantResults(t, s.SendBatch(t.Context(), ms), "ok", "ok", "ok")
	slotsFree(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 3 || srv.connections() != 1 {
		t.Fatalf("server received %d messages on %d connections, want 3 on 1", len(msgs), srv.connections())
	}
	a1, a2, a3 := "person1@example.gov", "person2@example.gov", "person3@example.gov"
	want := "EHLO example.org\r\n" + chunked(a1, msgs[0]) + "RSET\r\n" + chunked(a2, msgs[1]) + "RSET\r\n" + chunked(a3, msgs[2]) + "QUIT\r\n"
	if wire := streamOf(srv, 1); wire != want {
		t.Errorf("wire (%d bytes) differs from the %d bytes wanted", len(wire), len(want))
	}
}
