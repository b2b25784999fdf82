package dispatch

import (
	"context"
	"errors"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// Preview is one message a subscriber would get, rendered but not stored.
type Preview struct {
	Subscriber string             `json:"subscriber"`
	Channel    string             `json:"channel"`
	Kind       string             `json:"kind"`
	Address    string             `json:"address"`
	Status     string             `json:"status"`
	Reason     string             `json:"reason,omitempty"`
	Detail     string             `json:"detail,omitempty"`
	Subject    string             `json:"subject,omitempty"`
	Text       string             `json:"text,omitempty"`
	HTML       string             `json:"html,omitempty"`
	Encoding   templates.Encoding `json:"encoding,omitempty"`
	Segments   int                `json:"segments,omitempty"`
}

// Preview renders what req would send, to the subscribers keep accepts,
// without writing anything.
func (p *Planner) Preview(ctx context.Context, st *store.Store, req Request, keep func(subscriberID string) bool) ([]Preview, error) {
	if err := p.check(req); err != nil {
		return nil, err
	}
	var out []Preview
	errRollback := errors.New("preview: roll back")
	err := st.Write(ctx, func(tx *store.Tx) error {
		err := p.each(tx, req, p.now(), func(nd *store.NewDelivery, r templates.Rendered) error {
			if keep != nil && !keep(nd.SubscriberID) {
				return nil
			}
			out = append(out, Preview{Subscriber: nd.SubscriberID, Channel: nd.Channel, Kind: nd.Kind, Address: nd.Address, Status: nd.Status,
				Reason: nd.Reason, Detail: nd.Detail, Subject: r.Subject, Text: r.Text, HTML: r.HTML, Encoding: r.Encoding, Segments: r.Segments})
			return nil
		})
		if err != nil {
			return err
		}
		return errRollback
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return out, err
}
