package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crier-dev/crier/server"
	"github.com/crier-dev/crier/store"
)

// TestAPI_RoundTrips_MatchOpenAPI drives every /api/v1 route of a running
// crier serve through a realistic sequence (incident, broadcast, subscriber
// changes, the log and its export, schedules) and validates each request
// and answer against openapi.json; along the way it checks what the
// answers say against what the store did.
func TestAPI_RoundTrips_MatchOpenAPI(t *testing.T) {
	h, c := startAPI(t)

	t.Run("health and document", func(t *testing.T) {
		c.want(t, 200, req{method: "GET", path: "/healthz"})
		c.want(t, 200, req{method: "GET", path: "/readyz"})
		var doc struct {
			OpenAPI string `json:"openapi"`
		}
		c.want(t, 200, req{method: "GET", path: "/api/v1/openapi.json"}).json(t, &doc)
		if !strings.HasPrefix(doc.OpenAPI, "3.0") {
			t.Errorf("served document says openapi %q, want 3.0.x", doc.OpenAPI)
		}
	})

	t.Run("incident open, update, timeline", func(t *testing.T) {
		c.want(t, 201, req{method: "POST", path: "/api/v1/incidents", token: apiOperator, body: openBody, hdr: map[string]string{"Idempotency-Key": "inc-1"}})
		c.s.waitSent(t, "INC-1", 3)
		upd := `{"text":"Scotland affected too","impacts":[{"service":"Referrals","nation":"Scotland","status":"degraded","workaround":"phone"}]}`
		c.want(t, 200, req{method: "POST", path: "/api/v1/incidents/INC-1/updates", token: apiOperator, body: upd})
		if p := c.waitDone(t, "incident:INC-1:2"); p.Counts["sent"] != 4 {
			t.Errorf("the update's progress: %+v, want 4 sent (three clinicians in Wales and Scotland, and Slack)", p)
		}
		c.want(t, 200, req{method: "GET", path: "/api/v1/incidents?all=1", token: apiViewer})
		var inc struct {
			Impacts []struct{ Nation, Status string }
		}
		c.want(t, 200, req{method: "GET", path: "/api/v1/incidents/INC-1", token: apiViewer}).json(t, &inc)
		if len(inc.Impacts) != 2 {
			t.Errorf("impact matrix after the update: %+v, want wales and scotland", inc.Impacts)
		}
		var tl struct {
			Timeline []struct {
				Seq        int            `json:"seq"`
				Trigger    string         `json:"trigger"`
				Deliveries map[string]int `json:"deliveries"`
			} `json:"timeline"`
		}
		c.want(t, 200, req{method: "GET", path: "/api/v1/incidents/INC-1/timeline", token: apiViewer}).json(t, &tl)
		if len(tl.Timeline) != 2 || tl.Timeline[0].Trigger != "incident:INC-1:1" || tl.Timeline[1].Seq != 2 {
			t.Fatalf("timeline %+v, want the open and the update", tl.Timeline)
		}
		if got := tl.Timeline[0].Deliveries["sent"]; got != 3 {
			t.Errorf("timeline says the open sent %d, the log says 3 (%v)", got, tl.Timeline[0].Deliveries)
		}
	})

	var trigger string
	t.Run("broadcast pre-flight only, then send and progress", func(t *testing.T) {
		before := countDeliveries(t, c, "")
		bc := `{"audience":"ministers","channels":["ministers-email"],"subject":"Sitrep","body":"Paper referrals in Wales until 18:00.","preflight_only":true}`
		var pf struct {
			PreflightOnly bool    `json:"preflight_only"`
			Trigger       *string `json:"trigger"`
			Preflight     struct {
				Recipients int `json:"recipients"`
			} `json:"preflight"`
		}
		c.want(t, 200, req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: bc}).json(t, &pf)
		// ministers: the minister and three officials, one of whom (Morag
		// Fraser, Scotland) has no email address.
		if !pf.PreflightOnly || pf.Trigger != nil || pf.Preflight.Recipients != 3 {
			t.Fatalf("pre-flight only: %+v, want 3 recipients and no trigger", pf)
		}
		if after := countDeliveries(t, c, ""); after != before {
			t.Fatalf("a pre-flight only planned %d deliveries", after-before)
		}
		send := strings.Replace(bc, `,"preflight_only":true`, ``, 1)
		hdr := map[string]string{"Idempotency-Key": "bc-1"}
		first := c.want(t, 201, req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: send, hdr: hdr})
		var res struct {
			Trigger string `json:"trigger"`
			Created bool   `json:"created"`
			Queued  int    `json:"queued"`
		}
		first.json(t, &res)
		trigger = res.Trigger
		if !res.Created || res.Queued != 3 || first.hdr.Get("Location") != "/api/v1/broadcasts/"+trigger {
			t.Fatalf("broadcast answer %+v, Location %q", res, first.hdr.Get("Location"))
		}
		replay := c.want(t, 201, req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: send, hdr: hdr})
		if string(replay.body) != string(first.body) || replay.hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay with the same Idempotency-Key is not the first answer:\n%s", replay.body)
		}
		p := c.waitDone(t, trigger)
		if p.Total != 4 || p.Counts["sent"] != 3 || p.Counts["suppressed"] != 1 || p.Kind != "send" {
			t.Errorf("progress %+v, want 3 sent and 1 suppressed (no email address)", p)
		}
		if got := countDeliveries(t, c, "&trigger="+trigger); got != 4 {
			t.Errorf("the log has %d deliveries of %s after a replayed POST, want 4", got, trigger)
		}
		// One recipient acknowledges (as an SMS reply or a link would).
		var page struct {
			Deliveries []struct{ ID int64 } `json:"deliveries"`
		}
		c.want(t, 200, req{method: "GET", path: "/api/v1/deliveries?status=sent&trigger=" + trigger, token: apiViewer}).json(t, &page)
		st, err := store.Open(context.Background(), filepath.Join(h.dir, "crier.db"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.RecordAck(context.Background(), page.Deliveries[0].ID, "api", "test")
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if p := c.waitDone(t, trigger); p.Counts["acknowledged"] != 1 {
			t.Errorf("progress after one acknowledgement: %+v", p)
		}
	})

	t.Run("subscribers create, update, import, list", func(t *testing.T) {
		c.want(t, 200, req{method: "GET", path: "/api/v1/subscribers", token: apiViewer})
		var sub struct {
			ID, Phone, Locale string
		}
		c.want(t, 201, req{method: "POST", path: "/api/v1/subscribers", token: apiAdmin, hdr: map[string]string{"Idempotency-Key": "sub-1"},
			body: `{"id":"dr-jones","name":"Dr Rhys Jones","roles":["clinician"],"nations":["Wales"],"phone":"07400 123499"}`}).json(t, &sub)
		if sub.Phone != "+447400123499" || sub.Locale != "en" {
			t.Errorf("created subscriber %+v: phone not normalised to E.164 or locale not defaulted", sub)
		}
		c.want(t, 200, req{method: "PUT", path: "/api/v1/subscribers/dr-jones", token: apiAdmin,
			body: `{"name":"Dr Rhys Jones","roles":["clinician"],"nations":["wales"],"phone":"+447400123499","locale":"cy"}`}).json(t, &sub)
		csvBody := "id,name,roles,nations,phone\nnurse-a,Nurse A,clinician,wales,+447400123501\nnurse-b,Nurse B,clinician,england,+447400123502\n"
		var imp struct{ Imported, Created, Updated int }
		c.want(t, 200, req{method: "POST", path: "/api/v1/subscribers/import", token: apiAdmin, ctype: "text/csv", body: csvBody}).json(t, &imp)
		if imp.Imported != 2 || imp.Created != 2 {
			t.Errorf("import answer %+v, want 2 created", imp)
		}
		got := listSubscribers(t, c)
		for _, id := range []string{"dr-jones", "nurse-a", "nurse-b"} {
			if got[id].ID == "" {
				t.Errorf("GET /api/v1/subscribers lacks %s", id)
			}
		}
		if got["dr-jones"].Locale != "cy" {
			t.Errorf("PUT did not change dr-jones's locale: %+v", got["dr-jones"])
		}
	})

	t.Run("deliveries filters, pages and export", func(t *testing.T) {
		all := countDeliveries(t, c, "")
		var ids []int64
		cursor := ""
		for page := 0; page < 50; page++ {
			var p struct {
				Deliveries []struct{ ID int64 } `json:"deliveries"`
				NextCursor string               `json:"next_cursor"`
			}
			c.want(t, 200, req{method: "GET", path: "/api/v1/deliveries?limit=2&after=" + cursor, token: apiViewer}).json(t, &p)
			for _, d := range p.Deliveries {
				ids = append(ids, d.ID)
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if len(ids) != all || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != all {
			t.Errorf("pages of 2 gave ids %v, want %d distinct ids in order", ids, all)
		}
		if n := countDeliveries(t, c, "&kind=email&status=sent&channel=ministers-email&subscriber=minister-health"); n != 1 {
			t.Errorf("filtered to one subscriber's sent email: %d rows, want 1", n)
		}
		if n := countDeliveries(t, c, "&until=2000-01-01T00:00:00Z"); n != 0 {
			t.Errorf("until 2000: %d rows, want 0", n)
		}
		if n := countDeliveries(t, c, "&since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z"); n != all {
			t.Errorf("since 2000 until 2100: %d rows, want %d", n, all)
		}
		exp := c.want(t, 200, req{method: "GET", path: "/api/v1/deliveries/export?format=csv&incident=INC-1", token: apiViewer})
		cli := h.mustRun("log", "--csv", "--incident", "INC-1")
		if string(exp.body) != cli.stdout {
			t.Errorf("CSV export differs from crier log --csv:\nexport:\n%s\ncli:\n%s", exp.body, cli.stdout)
		}
		if recs, err := csv.NewReader(strings.NewReader(string(exp.body))).ReadAll(); err != nil || len(recs) < 2 {
			t.Errorf("CSV export does not parse or is empty: %v", err)
		}
		var rows []map[string]any
		c.want(t, 200, req{method: "GET", path: "/api/v1/deliveries/export?format=json&body=true&trigger=" + trigger, token: apiViewer}).json(t, &rows)
		if len(rows) != 4 || !strings.Contains(fmt.Sprint(rows[0]["text"]), "Paper referrals") {
			t.Errorf("JSON export of the broadcast: %d rows, first %v; want 4 with the text each recipient got", len(rows), rows)
		}
	})

	t.Run("schedules and fire now", func(t *testing.T) {
		var sc struct {
			Schedules []struct {
				Briefing string `json:"briefing"`
				TimeZone string `json:"time_zone"`
				State    string `json:"state"`
				Next     []struct {
					At    string `json:"at"`
					Local string `json:"local"`
				} `json:"next"`
			} `json:"schedules"`
		}
		c.want(t, 200, req{method: "GET", path: "/api/v1/schedules?n=3", token: apiViewer}).json(t, &sc)
		if len(sc.Schedules) != 1 {
			t.Fatalf("schedules %+v, want ministers-daily", sc.Schedules)
		}
		s := sc.Schedules[0]
		// The harness clock is Wednesday 25 November 2026, 10:00 UTC (GMT).
		if s.TimeZone != "Europe/London" || s.State != "never_run" || len(s.Next) != 3 || s.Next[0].At != "2026-11-25T17:00:00Z" || s.Next[1].Local != "Thu 2026-11-26 08:00 GMT" {
			t.Errorf("ministers-daily: %+v", s)
		}
		var out struct {
			Trigger string `json:"trigger"`
			Created bool   `json:"created"`
			Queued  int    `json:"queued"`
		}
		c.want(t, 201, req{method: "POST", path: "/api/v1/schedules/ministers-daily/fire", token: apiOperator}).json(t, &out)
		if !out.Created || out.Queued != 3 || !strings.HasPrefix(out.Trigger, "briefing:ministers-daily:") {
			t.Errorf("fire answer %+v", out)
		}
		again := c.want(t, 200, req{method: "POST", path: "/api/v1/schedules/ministers-daily/fire", token: apiOperator})
		if !strings.Contains(string(again.body), `"created": false`) {
			t.Errorf("a second fire in the same minute planned again:\n%s", again.body)
		}
		if p := c.waitDone(t, out.Trigger); p.Counts["sent"] != 3 || p.Kind != "briefing" {
			t.Errorf("briefing progress %+v, want 3 sent", p)
		}
	})

	t.Run("resolve", func(t *testing.T) {
		c.want(t, 200, req{method: "POST", path: "/api/v1/incidents/INC-1/resolve", token: apiOperator, body: `{}`})
	})
}

// countDeliveries counts the deliveries the list returns for a filter
// (one page of up to 5000).
func countDeliveries(t *testing.T, c *apiClient, filter string) int {
	t.Helper()
	var p struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	c.want(t, http.StatusOK, req{method: "GET", path: "/api/v1/deliveries?limit=5000" + filter, token: apiViewer}).json(t, &p)
	return len(p.Deliveries)
}

type apiSubscriber struct {
	ID, Name, Phone, Locale string
}

func listSubscribers(t *testing.T, c *apiClient) map[string]apiSubscriber {
	t.Helper()
	var l struct {
		Subscribers []apiSubscriber `json:"subscribers"`
	}
	c.want(t, 200, req{method: "GET", path: "/api/v1/subscribers", token: apiViewer}).json(t, &l)
	out := map[string]apiSubscriber{}
	for _, s := range l.Subscribers {
		out[s.ID] = s
	}
	return out
}

// TestAPI_DeliveryColumns_MatchLogCSV keeps the export's columns and
// `crier log --csv` together.
func TestAPI_DeliveryColumns_MatchLogCSV(t *testing.T) {
	if !slices.Equal(server.DeliveryColumns, logColumns) {
		t.Fatalf("server.DeliveryColumns %v\nlogColumns %v", server.DeliveryColumns, logColumns)
	}
}
