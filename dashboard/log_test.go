package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crier-dev/crier/store"
)

func TestDashboard_Log_Filters(t *testing.T) {
	e := newEnv(t)
	id := e.plan("send:log", 3)
	e.deliver(id)
	tests := []struct {
		name     string
		query    url.Values
		code     int
		has, not []string
	}{
		{"everything", nil, http.StatusOK, []string{"pa", "pb", "pc", "nobody", "No address", "Referrals are down &lt;b&gt;in Wales&lt;/b&gt;."}, nil},
		{"one recipient", url.Values{"subscriber": {"pb"}}, http.StatusOK, []string{`href="/recipients/pb"`}, []string{`href="/recipients/pa"`}},
		{"a status", url.Values{"status": {"suppressed"}}, http.StatusOK, []string{`href="/recipients/nobody"`}, []string{`href="/recipients/pa"`}},
		{"a broadcast", url.Values{"trigger": {fmt.Sprint(id)}, "since": {"24h"}}, http.StatusOK, []string{`href="/recipients/pa"`}, nil},
		{"another broadcast", url.Values{"trigger": {fmt.Sprint(id + 1)}}, http.StatusOK, []string{"No deliveries match."}, nil},
		{"not a status", url.Values{"status": {"<lost>"}}, http.StatusBadRequest, []string{"Status: &#34;&lt;lost&gt;&#34; is not a delivery status"}, []string{"<lost>"}},
		{"not a window", url.Values{"since": {"yesterday"}}, http.StatusBadRequest, []string{"Planned in the last: &#34;yesterday&#34;"}, nil},
		{"not a number", url.Values{"trigger": {"x"}}, http.StatusBadRequest, []string{"Broadcast number"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := e.get("/log?" + tt.query.Encode())
			if code != tt.code {
				t.Fatalf("GET /log?%s = %d, want %d", tt.query.Encode(), code, tt.code)
			}
			mustContain(t, "the log page", body, tt.has...)
			for _, n := range tt.not {
				if strings.Contains(body, n) {
					t.Errorf("the log page contains %q", n)
				}
			}
		})
	}
}

func TestDashboard_Log_PagesAndExport(t *testing.T) {
	e := newEnv(t)
	var first int64
	for i := 0; i < 26; i++ { // 26 triggers × 5 rows = 130: two pages of 100
		id := e.plan(fmt.Sprintf("send:page-%d", i), 4)
		if first == 0 {
			first = id
		}
	}
	_, _, body := e.get("/log?kind=sms")
	mustContain(t, "the first page", body, `href="/log?after=`, "kind=sms", `href="/log/export?format=csv&amp;kind=sms"`)
	if n := strings.Count(body, `<a href="/log/`); n < 100 {
		t.Errorf("the first page links %d deliveries, want 100", n)
	}
	i := strings.Index(body, `href="/log?after=`)
	next := strings.ReplaceAll(body[i+6:i+6+strings.Index(body[i+6:], `"`)], "&amp;", "&")
	_, _, page2 := e.get(next)
	if n := strings.Count(page2, `aria-label="Delivery `); n != 30 {
		t.Errorf("the second page (%s) lists %d deliveries, want 30", next, n)
	}
	mustContain(t, "the second page", page2, "First page")

	code, h, out := e.get("/log/export?format=csv&status=queued&bodies=1")
	if code != http.StatusOK || h.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.Contains(h.Get("Content-Disposition"), "attachment") ||
		out != "exported as csv\n" {
		t.Errorf("GET export = %d %q %q %q", code, h.Get("Content-Type"), h.Get("Content-Disposition"), out)
	}
	if f := e.app.exported[0]; f.Status != "queued" || !f.WithBody || f.Limit != 0 {
		t.Errorf("the export asked for %+v, want every queued delivery with bodies", f)
	}
	if code, _, _ := e.get("/log/export?format=xml"); code != http.StatusBadRequest {
		t.Errorf("GET export as xml = %d, want 400", code)
	}
}

func TestDashboard_Delivery_ShowsTheExactMessage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	err := e.st.Write(ctx, func(tx *store.Tx) error {
		tr := &store.Trigger{Key: "send:mail", Kind: "send", Name: "Mail"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		if err := enq.Add(&store.NewDelivery{SubscriberID: "min", Channel: "mail", Kind: "email", Address: "min@example.org", Status: store.StatusQueued,
			Subject: "Briefing <1>", Text: "Plain text\nline two", HTML: `<p style="color:red">Hello</p><script>alert(1)</script>`}); err != nil {
			return err
		}
		return enq.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := e.get("/log/1")
	if code != http.StatusOK {
		t.Fatalf("GET /log/1 = %d", code)
	}
	mustContain(t, "the delivery page", body, "Briefing &lt;1&gt;", "Plain text\nline two", `<iframe class="html" sandbox title=`,
		`srcdoc="&lt;p style=&#34;color:red&#34;&gt;Hello&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`, "min@example.org", "No attempts yet.")
	if strings.Contains(body, "<script>alert") {
		t.Error("the message's script is in the page")
	}
	if _, err := e.st.RecordAck(ctx, 1, "email", "link"); err != nil {
		t.Fatal(err)
	}
	_, _, body = e.get("/log/1")
	mustContain(t, "an acknowledged delivery's page", body, "Acknowledged", "via email")
	_, _, mine := e.get("/recipients/min")
	mustContain(t, "the recipient's page", mine, "Messages to min", "Briefing &lt;1&gt;", "Plain text")
	for _, path := range []string{"/log/2", "/log/x"} {
		if code, _, _ := e.get(path); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
	_, _, none := e.get("/recipients/nobody-at-all")
	mustContain(t, "an unknown recipient's page", none, "No messages to nobody-at-all")
}

func TestDashboard_Overview_ChartAndRecent(t *testing.T) {
	e := newEnv(t)
	id := e.plan("send:chart", 3)
	e.deliver(id)
	code, _, body := e.get("/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	mustContain(t, "the overview", body, "No active incidents.", `<figure class="chart`, `role="img"`,
		"sms, last 24 hours: 3 sent, 1 suppressed; busiest hour 4 messages.", "<title>10:00–11:00 UTC: 3 sent, 1 suppressed</title>",
		`<rect class="c-sent"`, `<rect class="c-suppressed"`, "Show these numbers as a table", `broadcast “Test broadcast”`)
}
