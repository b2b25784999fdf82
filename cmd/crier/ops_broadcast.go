package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
)

// ops_broadcast.go plans an ad-hoc broadcast for the API, the CLI and the
// dashboard alike, and recognises a repeat: a broadcast sent without a key
// of its own that is identical to one planned within
// broadcasts.repeat_window is answered with that one and not sent again.

// broadcastResult is what asking for a broadcast did.
type broadcastResult struct {
	// Outcome is the trigger that answers the request: the one planned,
	// or the earlier one (Created false).
	Outcome dispatch.Outcome
	// Preflight is what the planned broadcast renders to, when it was
	// asked for and something new was planned; nil otherwise.
	Preflight *dispatch.Preflight
	// RepeatOf is the earlier identical broadcast that answered this
	// request: nothing was planned.
	RepeatOf *store.Trigger
}

// autoKeyRE is the form of a trigger key crier chooses for a broadcast
// without a key: the fingerprint's first 12 hex digits and the number of
// the send. A caller's key may not take this form.
var autoKeyRE = regexp.MustCompile(`^[0-9a-f]{12}-[0-9]+$`)

// autoKeyProblem explains why a caller's key is refused, or is "".
func autoKeyProblem(key string) string {
	if autoKeyRE.MatchString(key) {
		return "has the form crier gives broadcasts sent without a key (12 hex digits, a dash and a number): choose another"
	}
	return ""
}

// repeatKeyPrefix is the trigger key of a broadcast without a key, but
// for the number of the send: send:<12 hex digits of fp>-.
func repeatKeyPrefix(fp string) string { return "send:" + fp[:12] + "-" }

// broadcastFingerprint is a hash of what makes two broadcasts the same
// message to the same people: audience, channels (in any order), subject
// and text (without surrounding white space), the critical flag and the
// acknowledgement request. A caller's key, a pre-flight-only flag and the
// repeat override are not part of it.
func broadcastFingerprint(r sendRequest) string {
	chans := slices.Clone(r.Channels)
	slices.Sort(chans)
	type ack struct {
		Within   time.Duration `json:"within"`
		Quorum   int           `json:"quorum"`
		Escalate []string      `json:"escalate"` // a ladder: its order matters
		Deputy   string        `json:"deputy"`
	}
	v := struct {
		Version  int      `json:"v"`
		Audience string   `json:"audience"`
		Channels []string `json:"channels"`
		Subject  string   `json:"subject"`
		Body     string   `json:"body"`
		Critical bool     `json:"critical"`
		Ack      *ack     `json:"ack"`
	}{1, r.Audience, slices.Compact(chans), strings.TrimSpace(r.Subject), strings.TrimSpace(r.Body), r.Critical, nil}
	if r.Ack != nil {
		v.Ack = &ack{Within: r.Ack.Within, Quorum: r.Ack.Quorum, Escalate: r.Ack.Escalate, Deputy: r.Ack.Deputy}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings, numbers and booleans always marshal
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// broadcast plans r once.
//
// With a key of its own (r.Key) it is planned once per key, as before.
// Without one, an identical broadcast (same fingerprint, with or without a
// key, from the API, the CLI or the dashboard) planned within the repeat
// window answers it, unless r.Repeat; otherwise it is planned under the
// content's next key. r.once, the dashboard's send button, keeps a second
// press from planning twice without exempting it from the window.
//
// Identical requests in this process are handled one after another, so a
// burst of them renders and plans once and the rest are answered from the
// store. Across processes the trigger key's uniqueness does the same: two
// requests that read the store at the same moment choose the same key,
// and the trigger's INSERT lets one of them plan.
//
// preflight renders the pre-flight first (the API's answer carries it);
// it is skipped when nothing new will be planned.
func (a *app) broadcast(ctx context.Context, r sendRequest, preflight bool) (broadcastResult, error) {
	req, err := a.sendRequest(r)
	if err != nil {
		return broadcastResult{}, err
	}
	fp := broadcastFingerprint(r)
	unlock, err := a.sameBroadcast.lock(ctx, fp)
	if err != nil {
		return broadcastResult{}, err
	}
	defer unlock()

	// req.Key is the caller's key or the send button's; a key planned
	// before plans nothing new, so its pre-flight is not rendered.
	var planned bool
	if req.Key != "" {
		if _, planned, err = a.st.TriggerByKey(ctx, req.Key); err != nil {
			return broadcastResult{}, err
		}
	}
	if r.Key == "" && !planned {
		prefix := repeatKeyPrefix(fp)
		rep, err := a.st.Repeats(ctx, fp, prefix)
		if err != nil {
			return broadcastResult{}, err
		}
		if earlier, ok := rep.Latest(a.env.now().Add(-a.cfg.Broadcasts.RepeatWindow)); ok && !r.Repeat {
			return repeatOf(earlier), nil
		}
		if req.Key == "" {
			req.Key = prefix + strconv.Itoa(rep.Next)
		}
	}
	preflight = preflight && !planned
	var res broadcastResult
	if preflight {
		pf, err := a.planner.Preflight(ctx, a.st, req, a.prices())
		if err != nil {
			return broadcastResult{}, err
		}
		res.Preflight = &pf
	}
	out, err := a.planner.Plan(ctx, a.st, req)
	if err != nil {
		return broadcastResult{}, err
	}
	res.Outcome = out
	// The fingerprint is written once the plan has returned; until then
	// Repeats finds the trigger by its key. A trigger this request did not
	// create gets it only under the content's own key (its planner may have
	// stopped before writing it).
	ownKey := r.Key == "" && r.once == ""
	if out.Created || ownKey {
		if err := a.st.SetFingerprint(context.WithoutCancel(ctx), out.TriggerID, fp); err != nil {
			a.log.Warn("broadcast planned; its fingerprint was not recorded", "trigger", out.Key, "err", err)
		}
	}
	if !out.Created && ownKey {
		// Another process planned this very key a moment ago.
		res.Preflight = nil
		tr, ok, err := a.st.TriggerByKey(ctx, out.Key)
		if err != nil {
			return broadcastResult{}, err
		}
		if ok {
			res.RepeatOf = &tr
		}
	}
	return res, nil
}

// recentRepeat is the broadcast identical to r planned within the repeat
// window, if any (for a warning before r is sent).
func (a *app) recentRepeat(ctx context.Context, r sendRequest) (*store.Trigger, error) {
	fp := broadcastFingerprint(r)
	rep, err := a.st.Repeats(ctx, fp, repeatKeyPrefix(fp))
	if err != nil {
		return nil, err
	}
	if tr, ok := rep.Latest(a.env.now().Add(-a.cfg.Broadcasts.RepeatWindow)); ok {
		return &tr, nil
	}
	return nil, nil
}

// repeatOf answers a request with the earlier identical broadcast tr,
// from what was just read: a repeat writes nothing, so a burst of them
// does not queue for the database's one writer.
func repeatOf(tr store.Trigger) broadcastResult {
	out := dispatch.Outcome{TriggerID: tr.ID, Key: tr.Key, Queued: tr.Planned, ByChannel: map[string]int{}, Planning: !tr.PlanUntil.IsZero()}
	return broadcastResult{Outcome: out, RepeatOf: &tr}
}

// repeatLine is the sentence that says a broadcast was not sent again;
// how names the override (--repeat, "repeat": true).
func (a *app) repeatLine(tr *store.Trigger, how string) string {
	ago := a.env.now().Sub(tr.CreatedAt).Round(time.Second)
	return fmt.Sprintf("identical to %s sent at %s (%s ago, within the %s repeat window): not sent again; use %s to send it anyway",
		tr.Key, tr.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"), ago, a.cfg.Broadcasts.RepeatWindow, how)
}

// keyedMutex is a mutex per key, for work that must not run twice at once
// for the same key in this process.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

// lock waits until key is free or ctx ends, and returns the unlock.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
