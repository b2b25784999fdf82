package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// The email benchmarks can send to a go-smtp sink in a process of its own,
// as a mail server would be: it then has its own Go runtime, with Go's
// default garbage-collector settings (not crier's), and the two processes
// share the machine's cores as a real crier and a real relay on one host
// would. The sink is this test binary run again with sinkProcEnv set.
const (
	sinkProcEnv   = "CRIER_LOADTEST_SINK"   // "1": run as the sink
	sinkProcCount = "CRIER_LOADTEST_SINK_N" // report once this many messages arrived
)

// runSinkProcess serves SMTP on a free loopback port until stdin closes.
// It prints "listening HOST:PORT", then "done FIRST LAST" (Unix
// nanoseconds of the first and the last message) and its CPU time so far
// (nanoseconds) once the expected count has arrived.
func runSinkProcess() {
	want, _ := strconv.ParseInt(os.Getenv(sinkProcCount), 10, 64)
	var count, first, last atomic.Int64
	var done atomic.Bool
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{count: &count, first: &first, last: &last}, nil
	}))
	s.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	go func() {
		for range time.Tick(2 * time.Millisecond) {
			if count.Load() >= want && done.CompareAndSwap(false, true) {
				fmt.Println("done", first.Load(), last.Load(), int64(cpuTime()))
			}
		}
	}()
	go func() { _ = s.Serve(ln) }()
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent is gone or done
	os.Exit(0)
}

type sinkSession struct{ count, first, last *atomic.Int64 }

func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	now := time.Now().UnixNano()
	s.first.CompareAndSwap(0, now)
	s.last.Store(now)
	s.count.Add(1)
	return nil
}
func (*sinkSession) Reset()        {}
func (*sinkSession) Logout() error { return nil }

// sinkProcess is a running sink process.
type sinkProcess struct {
	host string
	port int
	done chan [3]int64 // first and last message, Unix nanoseconds; the sink's CPU time
}

// startSinkProcess starts the sink expecting n messages; it is stopped at
// the end of the benchmark.
func startSinkProcess(b *testing.B, n int) *sinkProcess {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	env := []string{sinkProcEnv + "=1", sinkProcCount + "=" + strconv.Itoa(n)}
	for _, kv := range os.Environ() {
		// The sink runs with Go's defaults unless the caller set them.
		if !strings.HasPrefix(kv, sinkProcEnv+"=") && !strings.HasPrefix(kv, sinkProcCount+"=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("sink process: %v", err)
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		b.Fatalf("sink process said nothing: %v", lines.Err())
	}
	addr, ok := strings.CutPrefix(lines.Text(), "listening ")
	if !ok {
		b.Fatalf("sink process: %s", lines.Text())
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	p := &sinkProcess{host: host, done: make(chan [3]int64, 1)}
	p.port, _ = strconv.Atoi(port)
	go func() {
		for lines.Scan() {
			var first, last, cpu int64
			if _, err := fmt.Sscanf(lines.Text(), "done %d %d %d", &first, &last, &cpu); err == nil {
				p.done <- [3]int64{first, last, cpu}
			}
		}
	}()
	return p
}
