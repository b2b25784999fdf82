package store

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// DigestItem is a message a per-subscriber cap held back, to be carried by
// the subscriber's digest for the channel and window.
type DigestItem struct {
	Channel, Kind, SubscriberID, Address string
	WindowStart, WindowEnd               time.Time
	Header                               string // the digest's first line
	Line                                 string // this message's line
	Deadline                             time.Time
}

// FoldIntoDigest adds item to the digest delivery of its subscriber,
// channel and window, creating it (queued until the window ends) if it is
// the first. It returns the digest delivery's id, or 0 when that digest
// has already gone out (the caller then just suppresses the message).
func (t *Tx) FoldIntoDigest(item DigestItem) (int64, error) {
	key := fmt.Sprintf("digest:%s:%s:%s", item.Channel, item.SubscriberID, item.WindowStart.UTC().Format("2006-01-02T15:04Z"))
	tr := &Trigger{Key: key, Kind: "digest", Name: item.Channel}
	created, err := t.CreateTrigger(tr)
	if err != nil {
		return 0, err
	}
	now := ms(t.s.now())
	if created {
		text := item.Header + "\n" + item.Line
		msgID, err := t.putMessage("", text)
		if err != nil {
			return 0, err
		}
		res, err := t.exec(`INSERT INTO deliveries(trigger_id,subscriber_id,channel,kind,address,message_id,status,reason,detail,next_at,deadline,created_at,updated_at)
			VALUES(?,?,?,?,?,?,'queued','digest','held back by the per-subscriber cap until the window ends',?,?,?,?)`,
			tr.ID, item.SubscriberID, item.Channel, item.Kind, item.Address, msgID, ms(item.WindowEnd), ms(item.Deadline), now, now)
		if err != nil {
			return 0, fmt.Errorf("store: insert digest: %w", err)
		}
		if err := t.SetPlanned(tr.ID, 1); err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	var id int64
	var status, text string
	err = t.queryRow(`SELECT d.id, d.status, COALESCE(m.text,'') FROM deliveries d LEFT JOIN messages m ON m.id=d.message_id
		WHERE d.trigger_id=? AND d.subscriber_id=? AND d.channel=?`, tr.ID, item.SubscriberID, item.Channel).Scan(&id, &status, &text)
	if errNoRows(err) || status != StatusQueued {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	msgID, err := t.putMessage("", text+"\n"+item.Line)
	if err != nil {
		return 0, err
	}
	if _, err := t.exec(`UPDATE deliveries SET message_id=?, updated_at=? WHERE id=? AND status='queued'`, msgID, now, id); err != nil {
		return 0, err
	}
	return id, nil
}

// putMessage stores a body (once per content) and returns its id.
func (t *Tx) putMessage(subject, text string) (int64, error) {
	h := sha256.New()
	h.Write([]byte(subject))
	h.Write([]byte{0})
	h.Write([]byte(text))
	h.Write([]byte{0})
	var id int64
	err := t.queryRow(`INSERT INTO messages(hash,subject,text,html,segments) VALUES(?,?,?,'',0)
		ON CONFLICT(hash) DO UPDATE SET hash=excluded.hash RETURNING id`, h.Sum(nil), subject, text).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: insert message body: %w", err)
	}
	return id, nil
}
