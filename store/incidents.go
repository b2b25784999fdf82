package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/crier-dev/crier/incidents"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// CreateIncident stores a new incident with its first timeline entry and
// gives it the next ID (INC-1, INC-2, …).
func (t *Tx) CreateIncident(inc *incidents.Incident) error {
	var n int64
	if err := t.queryRow(`SELECT COUNT(*) FROM incidents`).Scan(&n); err != nil {
		return fmt.Errorf("store: number incident: %w", err)
	}
	inc.ID = fmt.Sprintf("INC-%d", n+1)
	imp, _ := json.Marshal(inc.Impacts)
	if _, err := t.exec(`INSERT INTO incidents(id,title,severity,status,summary,impacts,marking,next_update_at,opened_at,updated_at,resolved_at)
		VALUES(?,?,?,?,?,?,?,?,?,?,?)`, inc.ID, inc.Title, inc.Severity, inc.Status, inc.Summary, string(imp), marking(inc.Marking), ms(inc.NextUpdateAt),
		ms(inc.OpenedAt), ms(inc.UpdatedAt), ms(inc.ResolvedAt)); err != nil {
		return fmt.Errorf("store: insert incident: %w", err)
	}
	for _, u := range inc.Timeline {
		if err := t.insertUpdate(inc.ID, u); err != nil {
			return err
		}
	}
	return nil
}

// SaveIncidentUpdate stores inc's new state and its timeline entry u.
func (t *Tx) SaveIncidentUpdate(inc *incidents.Incident, u incidents.Update) error {
	imp, _ := json.Marshal(inc.Impacts)
	res, err := t.exec(`UPDATE incidents SET title=?, severity=?, status=?, summary=?, impacts=?, marking=?, next_update_at=?, updated_at=?, resolved_at=? WHERE id=?`,
		inc.Title, inc.Severity, inc.Status, inc.Summary, string(imp), marking(inc.Marking), ms(inc.NextUpdateAt), ms(inc.UpdatedAt), ms(inc.ResolvedAt), inc.ID)
	if err != nil {
		return fmt.Errorf("store: update incident %s: %w", inc.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: incident %s: %w", inc.ID, ErrNotFound)
	}
	return t.insertUpdate(inc.ID, u)
}

func (t *Tx) insertUpdate(id string, u incidents.Update) error {
	imp, _ := json.Marshal(u.Impacts)
	if _, err := t.exec(`INSERT INTO incident_updates(incident_id,seq,kind,at,status,severity,text,impacts,marking) VALUES(?,?,?,?,?,?,?,?,?)`,
		id, u.Seq, u.Kind, ms(u.At), u.Status, u.Severity, u.Text, string(imp), marking(u.Marking)); err != nil {
		return fmt.Errorf("store: insert update %s#%d: %w", id, u.Seq, err)
	}
	return nil
}

// Incident reads one incident with its timeline inside the transaction.
func (t *Tx) Incident(id string) (*incidents.Incident, error) {
	return getIncident(t.ctx, t.tx, id)
}

// Incident reads one incident with its timeline.
func (s *Store) Incident(ctx context.Context, id string) (*incidents.Incident, error) {
	return getIncident(ctx, s.r, id)
}

func getIncident(ctx context.Context, q querier, id string) (*incidents.Incident, error) {
	list, err := listIncidents(ctx, q, `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("incident %s: %w (crier incident list shows the IDs)", id, ErrNotFound)
	}
	return list[0], nil
}

// Incidents lists incidents, newest first; activeOnly leaves out resolved ones.
func (s *Store) Incidents(ctx context.Context, activeOnly bool) ([]*incidents.Incident, error) {
	where := ""
	if activeOnly {
		where = `WHERE status != 'resolved'`
	}
	return listIncidents(ctx, s.r, where)
}

// Incidents lists incidents inside the transaction (see Store.Incidents).
func (t *Tx) Incidents(activeOnly bool) ([]*incidents.Incident, error) {
	where := ""
	if activeOnly {
		where = `WHERE status != 'resolved'`
	}
	return listIncidents(t.ctx, t.tx, where)
}

func listIncidents(ctx context.Context, q querier, where string, args ...any) ([]*incidents.Incident, error) {
	rows, err := q.QueryContext(ctx, `SELECT id,title,severity,status,summary,impacts,marking,next_update_at,opened_at,updated_at,resolved_at FROM incidents `+where+` ORDER BY opened_at DESC, id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list incidents: %w", err)
	}
	defer rows.Close()
	var out []*incidents.Incident
	byID := map[string]*incidents.Incident{}
	for rows.Next() {
		var inc incidents.Incident
		var imp string
		var opened, updated, resolved, nextUpdate int64
		if err := rows.Scan(&inc.ID, &inc.Title, &inc.Severity, &inc.Status, &inc.Summary, &imp, &inc.Marking, &nextUpdate, &opened, &updated, &resolved); err != nil {
			return nil, fmt.Errorf("store: scan incident: %w", err)
		}
		if err := json.Unmarshal([]byte(imp), &inc.Impacts); err != nil {
			return nil, fmt.Errorf("store: incident %s impacts: %w", inc.ID, err)
		}
		inc.OpenedAt, inc.UpdatedAt, inc.ResolvedAt, inc.NextUpdateAt = fromMS(opened), fromMS(updated), fromMS(resolved), fromMS(nextUpdate)
		out = append(out, &inc)
		byID[inc.ID] = &inc
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	urows, err := q.QueryContext(ctx, `SELECT incident_id,seq,kind,at,status,severity,text,impacts,marking FROM incident_updates ORDER BY incident_id, seq`)
	if err != nil {
		return nil, fmt.Errorf("store: list updates: %w", err)
	}
	defer urows.Close()
	for urows.Next() {
		var id, imp string
		var u incidents.Update
		var at int64
		if err := urows.Scan(&id, &u.Seq, &u.Kind, &at, &u.Status, &u.Severity, &u.Text, &imp, &u.Marking); err != nil {
			return nil, fmt.Errorf("store: scan update: %w", err)
		}
		inc := byID[id]
		if inc == nil {
			continue
		}
		u.At = fromMS(at)
		_ = json.Unmarshal([]byte(imp), &u.Impacts)
		inc.Timeline = append(inc.Timeline, u)
	}
	return out, urows.Err()
}

func marking(m incidents.Marking) string {
	if m == "" {
		return string(incidents.Official)
	}
	return string(m)
}

// errNoRows reports sql.ErrNoRows.
func errNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
