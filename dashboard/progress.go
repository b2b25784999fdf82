package dashboard

import (
	"context"

	"github.com/crier-dev/crier/store"
)

// counts is how a set of deliveries stands, in the few words an operator
// follows: still to go, sent, delivered, failed, not sent by policy, and
// acknowledged.
type counts struct {
	Channel string `json:"channel,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Total   int    `json:"total"`
	// Queued is queued or being sent now.
	Queued    int `json:"queued"`
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
	// Failed is failed, expired, or unknown (in doubt after a crash,
	// held for an operator).
	Failed     int `json:"failed"`
	Suppressed int `json:"suppressed"`
	Acked      int `json:"acknowledged"`
}

// add counts n deliveries in status, acked of them acknowledged.
func (c *counts) add(status string, n, acked int) {
	c.Total += n
	c.Acked += acked
	switch status {
	case store.StatusQueued, store.StatusSending:
		c.Queued += n
	case store.StatusSent:
		c.Sent += n
	case store.StatusDelivered:
		c.Delivered += n
	case store.StatusSuppressed:
		c.Suppressed += n
	default:
		c.Failed += n
	}
}

// progress is a trigger's or an incident's deliveries, overall and per
// channel.
type progress struct {
	counts
	Channels []counts `json:"channels"`
	// Finished is how many will not change without outside input.
	Finished int  `json:"finished"`
	Done     bool `json:"done"`
}

// Percent is the finished share, for the progress bar's text.
func (p progress) Percent() int { return percent(p.Finished, p.Total) }

func tallyProgress(rows []store.TallyRow) progress {
	var p progress
	idx := map[string]int{}
	for _, r := range rows {
		p.add(r.Status, r.N, r.Acked)
		i, ok := idx[r.Channel]
		if !ok {
			i = len(p.Channels)
			idx[r.Channel] = i
			p.Channels = append(p.Channels, counts{Channel: r.Channel, Kind: r.Kind})
		}
		p.Channels[i].add(r.Status, r.N, r.Acked)
	}
	p.Finished = p.Total - p.Queued
	p.Done = p.Queued == 0
	if p.Channels == nil {
		p.Channels = []counts{}
	}
	return p
}

// progressOf reads the progress of the deliveries f selects.
func (d *Dashboard) progressOf(ctx context.Context, f store.TallyFilter) (progress, error) {
	rows, err := d.o.Read.Tally(ctx, f)
	if err != nil {
		return progress{}, err
	}
	return tallyProgress(rows), nil
}
