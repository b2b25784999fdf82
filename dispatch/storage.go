package dispatch

import (
	"context"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// What dispatch needs of the database, declared here, where it is used:
// the dispatcher, the planner and the escalator see storage only through
// these, and *store.Store (on SQLite or PostgreSQL) provides them. A plan
// is written through *store.Tx, the one transaction type of either engine.

// Writer runs write transactions.
type Writer interface {
	Write(ctx context.Context, fn func(*store.Tx) error) error
}

// PlanStore is what the planner needs: transactions, and the plans a
// stopped process left part-way.
type PlanStore interface {
	Writer
	UnfinishedPlans(ctx context.Context, now time.Time) ([]store.Trigger, error)
}

// Outbox is what the dispatcher needs: claims with outcomes, the queue's
// state, the claims of processes that are gone, heartbeats, and what
// reconciliation reads and records.
type Outbox interface {
	Round(ctx context.Context, results []store.Result, claims []store.ClaimOptions) ([][]store.Claimed, error)
	Record(ctx context.Context, results []store.Result) error
	Due(ctx context.Context, channel string, triggerIDs []int64) (bool, error)
	PendingByChannel(ctx context.Context, triggerIDs []int64) (map[string]store.PendingCount, error)
	Counts(ctx context.Context, triggerIDs []int64) (map[string]int, error)
	InHand(ctx context.Context, triggerIDs []int64) (int, error)
	ReleaseOrphans(ctx context.Context, o store.Orphans) (store.Recovered, error)
	ExpireOverdue(ctx context.Context) (int64, error)
	NodeHeartbeat(ctx context.Context, holder string, ttl time.Duration) error
	NodeGone(ctx context.Context, holder string) error
	InDoubt(ctx context.Context, channel string, limit int) ([]store.Doubt, error)
	ProviderIDTaken(ctx context.Context, providerID string, except int64) (bool, error)
	Reconciled(ctx context.Context, id int64, how store.Settlement, providerID string, segments int, next time.Time, detail string) (bool, error)
	ApplyReceipt(ctx context.Context, deliveryID int64, sid, status, errorCode string) (bool, error)
}

// EscalationStore is what the escalator needs.
type EscalationStore interface {
	Writer
	ActiveAckPolicies(ctx context.Context) ([]store.AckPolicy, error)
	AckPolicies(ctx context.Context, incidentID string) ([]store.AckPolicy, error)
	AckDeliveries(ctx context.Context, triggerID int64) ([]store.AckDelivery, error)
	Acks(ctx context.Context, triggerID int64) (map[string]store.Ack, error)
	DeputyTold(ctx context.Context, triggerID int64) (map[string]time.Time, error)
	SubscribersByID(ctx context.Context, ids []string) (map[string]subscribers.Subscriber, error)
	TriggerByKey(ctx context.Context, key string) (store.Trigger, bool, error)
}

var (
	_ PlanStore       = (*store.Store)(nil)
	_ Outbox          = (*store.Store)(nil)
	_ EscalationStore = (*store.Store)(nil)
)
