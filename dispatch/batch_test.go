package dispatch

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
)

// batchChannel is a testChannel that also takes batches, answering each
// message from the script and noting the batch sizes it was handed.
type batchChannel struct {
	*testChannel
	mu      sync.Mutex
	batches []int
}

var _ channels.BatchSender = (*batchChannel)(nil)

func (c *batchChannel) SendBatch(ctx context.Context, ms []channels.Message) []channels.Result {
	c.mu.Lock()
	c.batches = append(c.batches, len(ms))
	c.mu.Unlock()
	out := make([]channels.Result, len(ms))
	for i, m := range ms {
		out[i].Receipt, out[i].Err = c.Send(ctx, m)
	}
	return out
}

// A channel that takes batches gets several claimed deliveries at once;
// each comes back with its own outcome, recorded against its own row.
func TestDispatcher_Batches(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	crowd(t, st, 300)
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	out := plan(t, p, st, message("send:batch", "clinicians", "email"))
	ch := &batchChannel{testChannel: newTestChannel("email", channels.KindEmail, func(n int, m channels.Message) (channels.Receipt, error) {
		switch {
		case strings.Contains(m.Key, "/c0100/"):
			return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "550", errors.New("550 no such user"))
		case strings.Contains(m.Key, "/c0200/") && n == 1:
			return channels.Receipt{}, channels.Temporary(channels.ReasonServer, "451", 0, errors.New("451 try later"))
		}
		return channels.Receipt{ProviderID: "<" + m.Key + ">", Status: "250 ok"}, nil
	})}
	d := New(st, Options{Now: clk.Now, Rand: fixedRand(0), Poll: 5 * time.Millisecond})
	d.AddChannel(ch, Limits{Concurrency: 2})
	drain(t, d, clk, out.TriggerID)
	clk.Add(time.Hour) // past the retry's backoff
	drain(t, d, clk, out.TriggerID)

	big := 0
	for _, n := range ch.batches {
		if n > maxSendBatch {
			t.Fatalf("a batch of %d, more than %d", n, maxSendBatch)
		}
		if n > 1 {
			big++
		}
	}
	if big == 0 {
		t.Errorf("batch sizes %v: the channel was never handed more than one message", ch.batches)
	}
	rows := logRows(t, st, "send:batch")
	for k, e := range rows {
		switch k {
		case "c0100/email":
			if e.Status != store.StatusFailed || e.Reason != string(channels.ReasonBadAddress) {
				t.Errorf("%s: %s %s, want failed bad_address", k, e.Status, e.Reason)
			}
		case "c0200/email":
			if e.Status != store.StatusSent || e.Attempts != 2 {
				t.Errorf("%s: %s after %d attempts, want sent on the second", k, e.Status, e.Attempts)
			}
		default:
			if e.Status != store.StatusSent || e.ProviderID != "<send:batch/"+e.Subscriber+"/email>" {
				t.Errorf("%s: %s %q, want sent with its own provider id", k, e.Status, e.ProviderID)
			}
		}
	}
	for k, n := range ch.sent() {
		want := 1
		if strings.Contains(k, "/c0200/") {
			want = 2
		}
		if n != want {
			t.Errorf("%s handed over %d times", k, n)
		}
	}
}
