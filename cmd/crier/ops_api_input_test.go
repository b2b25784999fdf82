package main

import (
	"strings"
	"testing"
)

// TestAPI_BadInput_StatusCodeField sends, per endpoint, an unknown field,
// a wrong type, an invalid value, a body over the limit and a reused
// Idempotency-Key, and checks the status, the stable code and the field
// of each error (every answer also validated against openapi.json); then
// that none of it changed anything.
func TestAPI_BadInput_StatusCodeField(t *testing.T) {
	_, c := startAPI(t)
	c.want(t, 201, req{method: "POST", path: "/api/v1/incidents", token: apiOperator, body: openBody})
	c.s.waitSent(t, "INC-1", 3)
	c.want(t, 201, req{method: "POST", path: "/api/v1/subscribers", token: apiAdmin, body: `{"id":"api-person","name":"API Person","email":"a@example.org"}`,
		hdr: map[string]string{"Idempotency-Key": "person-1"}})
	before := countDeliveries(t, c, "")
	subsBefore := len(listSubscribers(t, c))

	huge := `{"body":"` + strings.Repeat("x", 1<<20+10) + `"}`
	bc := func(extra string) string {
		return `{"audience":"ministers","channels":["ministers-email"],"body":"hello"` + extra + `}`
	}
	const (
		subs   = "/api/v1/subscribers"
		imp    = "/api/v1/subscribers/import"
		csvHdr = "id,name,phone\n"
	)
	tests := []struct {
		name        string
		r           req
		code        int
		errCode     string
		field       string
		rowLine     int    // for CSV problems: the line of the first row problem
		rowColumn   string // and its column
		msgContains string
	}{
		// incidents
		{"incident unknown field", req{method: "POST", path: "/api/v1/incidents", token: apiOperator, body: `{"title":"x","severity":"minor","colour":"red"}`}, 400, "unknown_field", "colour", 0, "", "colour"},
		{"incident wrong type", req{method: "POST", path: "/api/v1/incidents", token: apiOperator, body: `{"title":"x","severity":3}`}, 400, "bad_json", "severity", 0, "", ""},
		{"incident invalid severity", req{method: "POST", path: "/api/v1/incidents", token: apiOperator, body: `{"title":"x","severity":"urgent"}`}, 422, "invalid", "severity", 0, "", "critical"},
		{"incident too large", req{method: "POST", path: "/api/v1/incidents", token: apiOperator, body: huge}, 413, "too_large", "", 0, "", ""},
		{"incident wrong content type", req{method: "POST", path: "/api/v1/incidents", token: apiOperator, ctype: "text/plain", body: `{}`}, 415, "unsupported_media_type", "", 0, "", ""},
		{"update bad impact", req{method: "POST", path: "/api/v1/incidents/INC-1/updates", token: apiOperator, body: `{"impacts":[{"service":"Referrals","nation":"wales","status":"broken"}]}`}, 422, "invalid", "impacts[0].status", 0, "", ""},
		{"update unknown incident", req{method: "POST", path: "/api/v1/incidents/INC-99/updates", token: apiOperator, body: `{"text":"x"}`}, 404, "not_found", "", 0, "", "INC-99"},
		{"timeline unknown incident", req{method: "GET", path: "/api/v1/incidents/INC-99/timeline", token: apiViewer}, 404, "not_found", "", 0, "", ""},
		// idempotency
		{"idempotency key reused with another body", req{method: "POST", path: subs, token: apiAdmin, body: `{"id":"other","name":"Other"}`, hdr: map[string]string{"Idempotency-Key": "person-1"}}, 422, "idempotency_key_reused", "Idempotency-Key", 0, "", ""},
		{"idempotency key too long", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: bc(""), hdr: map[string]string{"Idempotency-Key": strings.Repeat("k", 201)}}, 400, "bad_idempotency_key", "Idempotency-Key", 0, "", ""},
		// broadcasts
		{"broadcast unknown field", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: bc(`,"urgent":true`)}, 400, "unknown_field", "urgent", 0, "", ""},
		{"broadcast wrong type", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: `{"audience":"ministers","channels":"ministers-email","body":"x"}`}, 400, "bad_json", "channels", 0, "", ""},
		{"broadcast unknown audience", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: `{"audience":"everyone","channels":["ministers-email"],"body":"x"}`}, 422, "invalid", "audience", 0, "", "ministers"},
		{"broadcast unknown channel", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: `{"audience":"ministers","channels":["ministers-email","pager"],"body":"x"}`}, 422, "invalid", "channels[1]", 0, "", "pager"},
		{"broadcast empty body", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: `{"audience":"ministers","channels":["ministers-email"],"body":"  "}`}, 422, "invalid", "body", 0, "", ""},
		{"broadcast bad key", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: bc(`,"key":"a b/c"`)}, 422, "invalid", "key", 0, "", ""},
		{"broadcast too large", req{method: "POST", path: "/api/v1/broadcasts", token: apiOperator, body: huge}, 413, "too_large", "", 0, "", ""},
		{"progress unknown trigger", req{method: "GET", path: "/api/v1/broadcasts/send:nothing", token: apiViewer}, 404, "not_found", "", 0, "", ""},
		// subscribers
		{"subscriber unknown field", req{method: "POST", path: subs, token: apiAdmin, body: `{"id":"x1","name":"X","pager":"1"}`}, 400, "unknown_field", "pager", 0, "", ""},
		{"subscriber wrong type", req{method: "POST", path: subs, token: apiAdmin, body: `{"id":"x1","name":"X","roles":"clinician"}`}, 400, "bad_json", "roles", 0, "", ""},
		{"subscriber bad phone", req{method: "POST", path: subs, token: apiAdmin, body: `{"id":"x1","name":"X","phone":"0123"}`}, 422, "invalid", "phone", 0, "", "+447400123456"},
		{"subscriber exists", req{method: "POST", path: subs, token: apiAdmin, body: `{"id":"api-person","name":"Again"}`}, 409, "exists", "id", 0, "", "PUT"},
		{"subscriber from config", req{method: "POST", path: subs, token: apiAdmin, body: `{"id":"dr-morgan","name":"Dr Morgan"}`}, 409, "config_managed", "id", 0, "", "config"},
		{"subscriber too large", req{method: "POST", path: subs, token: apiAdmin, body: huge}, 413, "too_large", "", 0, "", ""},
		{"update id mismatch", req{method: "PUT", path: subs + "/api-person", token: apiAdmin, body: `{"id":"someone-else","name":"X"}`}, 422, "invalid", "id", 0, "", ""},
		{"update unknown subscriber", req{method: "PUT", path: subs + "/nobody", token: apiAdmin, body: `{"name":"X"}`}, 404, "not_found", "id", 0, "", ""},
		{"update bad email", req{method: "PUT", path: subs + "/api-person", token: apiAdmin, body: `{"name":"X","email":"not an address"}`}, 422, "invalid", "email", 0, "", ""},
		{"update config subscriber", req{method: "PUT", path: subs + "/dr-morgan", token: apiAdmin, body: `{"name":"X"}`}, 409, "config_managed", "id", 0, "", ""},
		// import
		{"import not csv", req{method: "POST", path: imp, token: apiAdmin, body: `{"id":"x"}`}, 415, "unsupported_media_type", "", 0, "", ""},
		{"import bad header", req{method: "POST", path: imp, token: apiAdmin, ctype: "text/csv", body: "id,name,pager\nx,X,1\n"}, 422, "invalid_csv", "line 1, column pager", 1, "pager", ""},
		{"import bad row is all or nothing", req{method: "POST", path: imp, token: apiAdmin, ctype: "text/csv", body: csvHdr + "ok-1,OK,+447400123601\nbad-1,Bad,0123\n"}, 422, "invalid_csv", "line 3, column phone", 3, "phone", "nothing was imported"},
		{"import config subscriber", req{method: "POST", path: imp, token: apiAdmin, ctype: "text/csv", body: csvHdr + "ok-2,OK,+447400123602\ndr-morgan,Dr M,+447400123410\n"}, 422, "invalid_csv", "line 3, column id", 3, "id", "config"},
		{"import bad skip_invalid", req{method: "POST", path: imp + "?skip_invalid=yes", token: apiAdmin, ctype: "text/csv", body: csvHdr}, 400, "invalid", "skip_invalid", 0, "", ""},
		{"import too large", req{method: "POST", path: imp, token: apiAdmin, ctype: "text/csv", body: csvHdr + strings.Repeat("x,y,z\n", 1<<18)}, 413, "too_large", "", 0, "", ""},
		// deliveries
		{"deliveries bad status", req{method: "GET", path: "/api/v1/deliveries?status=lost", token: apiViewer}, 400, "invalid", "status", 0, "", "queued"},
		{"deliveries bad kind", req{method: "GET", path: "/api/v1/deliveries?kind=fax", token: apiViewer}, 400, "invalid", "kind", 0, "", ""},
		{"deliveries bad since", req{method: "GET", path: "/api/v1/deliveries?since=yesterday", token: apiViewer}, 400, "invalid", "since", 0, "", "RFC 3339"},
		{"deliveries until before since", req{method: "GET", path: "/api/v1/deliveries?since=2026-11-25T10:00:00Z&until=2026-11-25T09:00:00Z", token: apiViewer}, 400, "invalid", "until", 0, "", ""},
		{"deliveries bad limit", req{method: "GET", path: "/api/v1/deliveries?limit=0", token: apiViewer}, 400, "invalid", "limit", 0, "", ""},
		{"deliveries bad cursor", req{method: "GET", path: "/api/v1/deliveries?after=abc", token: apiViewer}, 400, "invalid", "after", 0, "", ""},
		{"export bad format", req{method: "GET", path: "/api/v1/deliveries/export?format=xml", token: apiViewer}, 400, "invalid", "format", 0, "", ""},
		// schedules
		{"schedules bad n", req{method: "GET", path: "/api/v1/schedules?n=0", token: apiViewer}, 400, "invalid", "n", 0, "", ""},
		{"fire unknown briefing", req{method: "POST", path: "/api/v1/schedules/weekly/fire", token: apiOperator}, 404, "not_found", "", 0, "", "ministers-daily"},
		{"fire unknown field", req{method: "POST", path: "/api/v1/schedules/ministers-daily/fire", token: apiOperator, body: `{"when":"now"}`}, 400, "unknown_field", "when", 0, "", ""},
		// roles
		{"viewer cannot broadcast", req{method: "POST", path: "/api/v1/broadcasts", token: apiViewer, body: bc("")}, 403, "forbidden", "", 0, "", "operator"},
		{"operator cannot add subscribers", req{method: "POST", path: subs, token: apiOperator, body: `{"id":"x2","name":"X"}`}, 403, "forbidden", "", 0, "", "admin"},
		{"operator cannot import", req{method: "POST", path: imp, token: apiOperator, ctype: "text/csv", body: csvHdr}, 403, "forbidden", "", 0, "", ""},
		{"no token for schedules", req{method: "GET", path: "/api/v1/schedules"}, 401, "unauthorized", "", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.badRequest = true
			resp := c.do(t, tt.r)
			if resp.code != tt.code {
				t.Fatalf("status %d, want %d\n%s", resp.code, tt.code, clip(resp.body))
			}
			var e apiErrorBody
			resp.json(t, &e)
			if e.Error.Code != tt.errCode || e.Error.Field != tt.field {
				t.Errorf("error code %q field %q, want %q %q\n%s", e.Error.Code, e.Error.Field, tt.errCode, tt.field, clip(resp.body))
			}
			if tt.msgContains != "" && !strings.Contains(e.Error.Message, tt.msgContains) {
				t.Errorf("message %q does not mention %q", e.Error.Message, tt.msgContains)
			}
			if tt.rowLine != 0 && (len(e.Error.Rows) == 0 || e.Error.Rows[0].Line != tt.rowLine || e.Error.Rows[0].Column != tt.rowColumn) {
				t.Errorf("row problems %+v, want the first at line %d column %s", e.Error.Rows, tt.rowLine, tt.rowColumn)
			}
		})
	}
	if after := countDeliveries(t, c, ""); after != before {
		t.Errorf("bad requests planned %d deliveries", after-before)
	}
	if after := len(listSubscribers(t, c)); after != subsBefore {
		t.Errorf("bad requests changed the number of subscribers from %d to %d", subsBefore, after)
	}
}

// TestAPI_Import_SkipInvalid imports the good rows and lists the bad ones
// when asked to.
func TestAPI_Import_SkipInvalid(t *testing.T) {
	_, c := startAPI(t)
	body := "id,name,phone,email\nok-1,OK One,+447400123601,\nbad-1,Bad,0123,\ndr-morgan,Dr M,+447400123410,\nok-2,OK Two,,two@example.org\n"
	var res struct {
		Imported int `json:"imported"`
		Created  int `json:"created"`
		Skipped  []struct {
			Line   int    `json:"line"`
			Column string `json:"column"`
		} `json:"skipped"`
	}
	c.want(t, 200, req{method: "POST", path: "/api/v1/subscribers/import?skip_invalid=true", token: apiAdmin, ctype: "text/csv", body: body}).json(t, &res)
	if res.Imported != 2 || res.Created != 2 || len(res.Skipped) != 2 || res.Skipped[0].Line != 3 || res.Skipped[1].Line != 4 || res.Skipped[1].Column != "id" {
		t.Fatalf("skip_invalid import: %+v, want ok-1 and ok-2 imported, lines 3 (phone) and 4 (config id) skipped", res)
	}
	got := listSubscribers(t, c)
	if got["ok-1"].ID == "" || got["ok-2"].ID == "" || got["bad-1"].ID != "" {
		t.Errorf("after the import the store has ok-1 %v, ok-2 %v, bad-1 %v", got["ok-1"], got["ok-2"], got["bad-1"])
	}
	if got["dr-morgan"].Phone != "+447400123410" || got["dr-morgan"].Name != "Dr Eleri Morgan" {
		t.Errorf("the import changed a config subscriber: %+v", got["dr-morgan"])
	}
}
