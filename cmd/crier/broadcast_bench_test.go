package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// burstHarness is the API harness with people extra clinicians, so that
// rendering a broadcast's pre-flight takes the time it takes for a real
// audience.
func burstHarness(tb testing.TB, people int) *harness {
	tb.Helper()
	h := apiHarness(tb)
	var csv strings.Builder
	csv.WriteString("id,name,roles,nations,phone\n")
	for i := range people {
		fmt.Fprintf(&csv, "c%05d,Clinician %d,clinician,wales,+4474009%05d\n", i, i, i)
	}
	h.write("people.csv", csv.String())
	raw, err := os.ReadFile(h.config)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := string(raw)
	const from = "subscribers:\n  csv: \"\"\n"
	if !strings.Contains(cfg, from) {
		tb.Fatalf("the example config no longer has %q", from)
	}
	h.write("config.yaml", strings.Replace(cfg, from, "subscribers:\n  csv: people.csv\n", 1))
	return h
}

// burstAnswer is one answer of a burst.
type burstAnswer struct {
	code int
	body []byte
	took time.Duration
}

// postBurst sends n copies of one broadcast at once, each with hdr, and
// returns the answers. It may run outside the test's goroutine: it only
// reports errors.
func postBurst(tb testing.TB, s *serverRun, n int, body string, hdr map[string]string) []burstAnswer {
	tb.Helper()
	var mu sync.Mutex
	var out []burstAnswer
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 2 * time.Minute}
	for range n {
		wg.Go(func() {
			req, err := http.NewRequest("POST", s.base+"/api/v1/broadcasts", strings.NewReader(body))
			if err != nil {
				tb.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+apiOperator)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			start := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				tb.Error(err)
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				tb.Error(err)
				return
			}
			mu.Lock()
			out = append(out, burstAnswer{code: resp.StatusCode, body: b, took: time.Since(start)})
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// BenchmarkAPI_BroadcastBurst sends bursts of 16 identical broadcasts to
// 2,000 people through a real crier serve: without any key (recognised
// by content), and with one Idempotency-Key. ns/op is the time the
// slowest answer of a burst took.
func BenchmarkAPI_BroadcastBurst(b *testing.B) {
	const burst, people = 32, 10000
	for _, mode := range []string{"keyless", "idempotency-key"} {
		b.Run(mode, func(b *testing.B) {
			h := burstHarness(b, people)
			s := startServe(b, h)
			var worst time.Duration
			b.ResetTimer()
			for i := range b.N {
				body := fmt.Sprintf(`{"audience":"clinicians","channels":["ops-sms"],"body":"Burst %d: use paper prescriptions until further notice."}`, i)
				var hdr map[string]string
				if mode != "keyless" {
					hdr = map[string]string{"Idempotency-Key": fmt.Sprintf("burst-%d", i)}
				}
				created := 0
				for _, a := range postBurst(b, s, burst, body, hdr) {
					if a.code == http.StatusCreated {
						created++
					}
					worst = max(worst, a.took)
				}
				if created != 1 {
					b.Errorf("burst %d: %d answers 201, want exactly one (planned once)", i, created)
				}
			}
			b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
		})
	}
}
