package loadtest

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
)

// BenchmarkSMTPSink_Ceiling measures the SMTP sink the email benchmarks
// send to, on its own: 16 connections of a minimal client (no composing,
// no database) send 100,000 pre-built messages of each size, with DATA
// pipelined across messages (RFC 2920) and with BDAT (RFC 3030 CHUNKING,
// which the sink offers). What it reaches is the most any sender can get
// through that sink on this machine, and the CPU it reports per message
// (client and sink, in this process) is mostly the sink's.
func BenchmarkSMTPSink_Ceiling(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"message_2KB", 2_000}, {"briefing_10.7KB", 10_700}} {
		for _, mode := range []string{"data", "bdat"} {
			b.Run(size.name+"/"+mode, func(b *testing.B) {
				peer := channeltest.NewSMTPPeer(b, channeltest.SMTPDiscard())
				line := "=E2=80=94 quoted-printable text of a rendered briefing, as go-mail wr=\r\n"
				msg := "Subject: ceiling\r\nTo: <a@example.org>\r\n\r\n" + strings.Repeat(line, size.bytes/len(line))
				const conns, total = 16, 100_000
				for i := 0; i < b.N; i++ {
					var wg sync.WaitGroup
					cpu0, start := cpuTime(), time.Now()
					for range conns {
						wg.Go(func() {
							if err := sinkClient(peer.Host, peer.Port, mode, msg, total/conns); err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
					elapsed, cpu := time.Since(start), cpuTime()-cpu0
					b.ReportMetric(total/elapsed.Seconds(), "msgs/s")
					b.ReportMetric(float64(cpu.Microseconds())/total, "cpu_µs/msg")
				}
			})
		}
	}
}

// sinkClient sends n copies of msg on one connection. With DATA each
// message's data and final "." go out in one write with the next
// message's commands (one round trip a message); with BDAT each message
// is one write: its commands and the chunk.
func sinkClient(host string, port int, mode, msg string, n int) error {
	nc, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer nc.Close()
	c := textproto.NewConn(nc)
	c.W = bufio.NewWriterSize(nc, 32<<10)
	if _, _, err := c.ReadResponse(220); err != nil {
		return err
	}
	if err := c.PrintfLine("EHLO ceiling.example.org"); err != nil {
		return err
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		return err
	}
	const envelope = "MAIL FROM:<briefings@example.org>\r\nRCPT TO:<a@example.org>\r\n"
	if mode == "bdat" {
		for range n {
			fmt.Fprintf(c.W, "%sBDAT %d LAST\r\n", envelope, len(msg))
			_, _ = c.W.WriteString(msg)
			if err := c.W.Flush(); err != nil {
				return err
			}
			for range 3 {
				if _, _, err := c.ReadResponse(250); err != nil {
					return err
				}
			}
		}
		return nil
	}
	_, _ = c.W.WriteString(envelope + "DATA\r\n")
	for i := range n {
		if err := c.W.Flush(); err != nil {
			return err
		}
		if i > 0 {
			if _, _, err := c.ReadResponse(250); err != nil { // the previous message
				return err
			}
		}
		for _, code := range []int{250, 250, 354} {
			if _, _, err := c.ReadResponse(code); err != nil {
				return err
			}
		}
		_, _ = c.W.WriteString(msg + ".\r\n")
		if i < n-1 {
			_, _ = c.W.WriteString(envelope + "DATA\r\n")
		}
	}
	if err := c.W.Flush(); err != nil {
		return err
	}
	_, _, err = c.ReadResponse(250)
	return err
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
