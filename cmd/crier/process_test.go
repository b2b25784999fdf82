package main

import (
	"bufio"
	"context"
	"database/sql"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestMain lets a test start crier as a process of its own: the test
// binary, run again with CRIER_TEST_RUN_MAIN=1, is the crier binary (the
// same main, the same code under test), so a test can SIGKILL it.
func TestMain(m *testing.M) {
	if os.Getenv("CRIER_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// process is crier running as a child process.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port once serving

	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
}

var processServingRE = regexp.MustCompile(`crier serving on (http://127\.0\.0\.1:\d+)`)

// startProcess runs `crier serve --listen 127.0.0.1:0 --config config`
// with env added to this process's environment, and waits until it
// serves. The process is killed when the test ends if it still runs.
func startProcess(t *testing.T, config string, env ...string) *process {
	t.Helper()
	p := &process{t: t, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--config", config)
	p.cmd.Env = append(append(os.Environ(), "CRIER_TEST_RUN_MAIN=1"), env...)
	p.cmd.Dir = filepath.Dir(config)
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := processServingRE.FindStringSubmatch(line); m != nil {
				select {
				case serving <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, errPipe)
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case p.base = <-serving:
		return p
	case <-p.exited:
		t.Fatalf("crier serve exited before serving:\n%s", p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("crier serve did not serve within 30s:\n%s", p.log())
	}
	return nil
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the killed process did not exit")
	}
}

// post sends a JSON POST with a bearer token.
func (p *process) post(path, token, body string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, p.base+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readDB opens the SQLite file read-only, beside whatever process writes it.
func readDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
