package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// overviewData is the home page: what is happening now.
type overviewData struct {
	Active []*incidents.Incident
	Chart  chart
	Recent []triggerRow
}

// triggerRow is one broadcast, briefing or alert with its progress.
type triggerRow struct {
	T store.Trigger
	P progress
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	active, err := d.o.Read.Incidents(ctx, true)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	ch, err := d.chart(ctx)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	recent, err := d.recentTriggers(r, 8)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "overview", "Overview", overviewData{Active: active, Chart: ch, Recent: recent})
}

func (d *Dashboard) incidentList(w http.ResponseWriter, r *http.Request) {
	all := r.URL.Query().Get("all") != ""
	list, err := d.o.Read.Incidents(r.Context(), !all)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "incidents", "Incidents", struct {
		List []*incidents.Incident
		All  bool
	}{list, all})
}

// impactRow is one row of the impact form: an existing service × nation
// (fixed, its status and workaround editable) or a new one.
type impactRow struct {
	N                                   int
	Existing                            bool
	Service, Nation, Status, Workaround string
}

// incidentForm is the open and update forms' values and problems.
type incidentForm struct {
	Title, Severity, Summary, Marking string
	Text, Status, NextUpdate          string
	Rows                              []impactRow
	Errors                            fieldErrors
}

// choices are the fixed lists every incident form offers.
type choices struct {
	Severities, Statuses, ImpactStatuses, Nations, Markings []string
	NextUpdates                                             []string
}

func incidentChoices() choices {
	return choices{
		Severities:     []string{"critical", "major", "minor"},
		Statuses:       []string{"investigating", "identified", "monitoring"},
		ImpactStatuses: []string{"operational", "degraded", "outage", "restored"},
		Nations:        subscribers.Nations(),
		Markings:       []string{string(incidents.Official), string(incidents.OfficialSensitive)},
		NextUpdates:    []string{"30m", "1h", "2h", "4h", "8h"},
	}
}

// newRows are blank impact rows numbered from start.
func newRows(start, n int) []impactRow {
	out := make([]impactRow, n)
	for i := range out {
		out[i] = impactRow{N: start + i}
	}
	return out
}

type newIncidentData struct {
	Form incidentForm
	C    choices
}

func (d *Dashboard) newIncident(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "incident_new", "Open an incident", newIncidentData{
		Form: incidentForm{Marking: string(incidents.Official), Rows: newRows(0, 4)}, C: incidentChoices()})
}

// readRows reads the impact rows of a posted form.
func readRows(f url.Values) []impactRow {
	var rows []impactRow
	for i := 0; i < 64; i++ {
		p := "impact." + strconv.Itoa(i) + "."
		if _, ok := f[p+"status"]; !ok {
			break
		}
		rows = append(rows, impactRow{N: i, Existing: f.Get(p+"existing") != "", Service: strings.TrimSpace(f.Get(p + "service")),
			Nation: f.Get(p + "nation"), Status: f.Get(p + "status"), Workaround: strings.TrimSpace(f.Get(p + "workaround"))})
	}
	return rows
}

// impactChanges turns form rows into the impacts to send, skipping blank
// new rows and unchanged existing ones. sent[k] is the form row of the
// k-th impact, so a problem with impacts[k] lands on its row.
func impactChanges(rows []impactRow, current []incidents.Impact) (ims []incidents.Impact, sent []int) {
	for _, row := range rows {
		if !row.Existing && row.Service == "" && row.Status == "" && row.Workaround == "" {
			continue
		}
		if row.Existing {
			i := slices.IndexFunc(current, func(im incidents.Impact) bool {
				return strings.EqualFold(im.Service, row.Service) && im.Nation == row.Nation
			})
			if i >= 0 && string(current[i].Status) == row.Status && current[i].Workaround == row.Workaround {
				continue
			}
		}
		ims = append(ims, incidents.Impact{Service: row.Service, Nation: row.Nation, Status: incidents.ImpactStatus(row.Status), Workaround: row.Workaround})
		sent = append(sent, row.N)
	}
	return ims, sent
}

// renameImpact maps the domain's "impacts[k].status" to the form field of
// the row it came from.
func renameImpact(sent []int) func(string) string {
	return func(p string) string {
		rest, ok := strings.CutPrefix(p, "impacts[")
		if !ok {
			return p
		}
		num, field, _ := strings.Cut(rest, "]")
		k, err := strconv.Atoi(num)
		if err != nil || k >= len(sent) {
			return p
		}
		if field = strings.TrimPrefix(field, "."); field == "" {
			field = "service"
		}
		return fmt.Sprintf("impact.%d.%s", sent[k], field)
	}
}

func (d *Dashboard) openIncident(w http.ResponseWriter, r *http.Request) {
	if !d.form(w, r) {
		return
	}
	f := r.PostForm
	form := incidentForm{Title: f.Get("title"), Severity: f.Get("severity"), Summary: f.Get("summary"), Marking: f.Get("marking"), Rows: readRows(f)}
	ims, sent := impactChanges(form.Rows, nil)
	res, err := d.o.App.OpenIncident(r.Context(), incidents.Change{Title: form.Title, Severity: form.Severity, Summary: form.Summary,
		Marking: form.Marking, Impacts: ims})
	if err != nil {
		if !form.Errors.fromList(err, renameImpact(sent)) {
			d.fail(w, r, err)
			return
		}
		d.render(w, r, http.StatusUnprocessableEntity, "incident_new", "Open an incident", newIncidentData{Form: form, C: incidentChoices()})
		return
	}
	d.o.Notify()
	http.Redirect(w, r, fmt.Sprintf("/incidents/%s?ok=opened&n=%d", url.PathEscape(res.Incident.ID), res.Outcome.Queued), http.StatusSeeOther)
}

// matrixRow is one service across the nations.
type matrixRow struct {
	Service string
	Cells   []matrixCell
}

type matrixCell struct {
	Nation     string
	Status     string // "" when this service has no entry for the nation
	Workaround string
}

// matrix lays impacts out as services × nations, services in the order
// they were first reported.
func matrix(ims []incidents.Impact) (nations []string, rows []matrixRow) {
	nations = subscribers.Nations()
	idx := map[string]int{}
	for _, im := range ims {
		k := strings.ToLower(im.Service)
		i, ok := idx[k]
		if !ok {
			i = len(rows)
			idx[k] = i
			row := matrixRow{Service: im.Service, Cells: make([]matrixCell, len(nations))}
			for j, n := range nations {
				row.Cells[j].Nation = n
			}
			rows = append(rows, row)
		}
		if j := slices.Index(nations, im.Nation); j >= 0 {
			rows[i].Cells[j] = matrixCell{Nation: im.Nation, Status: string(im.Status), Workaround: im.Workaround}
		}
	}
	return nations, rows
}

type incidentData struct {
	Inc      *incidents.Incident
	Nations  []string
	Matrix   []matrixRow
	Timeline []incidents.Update // newest first
	P        progress
	LogURL   string
	Form     incidentForm
	C        choices
}

func (d *Dashboard) incident(w http.ResponseWriter, r *http.Request) {
	inc, err := d.o.Read.Incident(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.showIncident(w, r, http.StatusOK, inc, updateForm(inc))
}

// updateForm is the update form for inc as it stands: its impacts
// editable in place, two blank rows for new ones.
func updateForm(inc *incidents.Incident) incidentForm {
	f := incidentForm{Status: string(inc.Status), Severity: string(inc.Severity)}
	for i, im := range inc.Impacts {
		f.Rows = append(f.Rows, impactRow{N: i, Existing: true, Service: im.Service, Nation: im.Nation, Status: string(im.Status), Workaround: im.Workaround})
	}
	f.Rows = append(f.Rows, newRows(len(f.Rows), 2)...)
	return f
}

func (d *Dashboard) showIncident(w http.ResponseWriter, r *http.Request, status int, inc *incidents.Incident, form incidentForm) {
	p, err := d.progressOf(r.Context(), store.TallyFilter{IncidentID: inc.ID})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	nations, rows := matrix(inc.Impacts)
	tl := slices.Clone(inc.Timeline)
	slices.Reverse(tl)
	d.render(w, r, status, "incident", inc.ID+": "+inc.Title, incidentData{Inc: inc, Nations: nations, Matrix: rows, Timeline: tl, P: p,
		LogURL: "/log?" + url.Values{"incident": {inc.ID}}.Encode(), Form: form, C: incidentChoices()})
}

// changeIncident posts an update or resolves. Only what the operator
// changed is sent, so an update's timeline entry says what changed.
func (d *Dashboard) changeIncident(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.form(w, r) {
			return
		}
		ctx := r.Context()
		inc, err := d.o.Read.Incident(ctx, r.PathValue("id"))
		if err != nil {
			d.fail(w, r, err)
			return
		}
		f := r.PostForm
		form := incidentForm{Text: f.Get("text"), Status: f.Get("status"), Severity: f.Get("severity"), NextUpdate: f.Get("next_update"), Rows: readRows(f)}
		c := incidents.Change{Text: form.Text}
		if form.Status != string(inc.Status) {
			c.Status = form.Status
		}
		if form.Severity != string(inc.Severity) {
			c.Severity = form.Severity
		}
		if form.NextUpdate != "" {
			dur, err := time.ParseDuration(form.NextUpdate)
			if err != nil || dur <= 0 {
				form.Errors.add("next_update", "choose when the next update is promised from the list")
			} else {
				c.NextUpdateAt = d.o.Now().Add(dur)
			}
		}
		var sent []int
		if kind == "update" {
			c.Impacts, sent = impactChanges(form.Rows, inc.Impacts)
		}
		var res struct{ seq, queued int }
		if !form.Errors.Any() {
			out, err := d.o.App.ChangeIncident(ctx, inc.ID, kind, c)
			switch {
			case err == nil:
				res.seq, res.queued = out.Update.Seq, out.Outcome.Queued
			case kind == "resolve":
				if _, ok := fields.AsList(err); !ok {
					d.fail(w, r, err)
					return
				}
				form = updateForm(inc)
				form.Errors.add("resolve", "The incident could not be resolved: "+joinErrors(err))
			case !form.Errors.fromList(err, renameImpact(sent)):
				d.fail(w, r, err)
				return
			}
		}
		if form.Errors.Any() {
			d.showIncident(w, r, http.StatusUnprocessableEntity, inc, form)
			return
		}
		d.o.Notify()
		http.Redirect(w, r, fmt.Sprintf("/incidents/%s?ok=%s&seq=%d&n=%d", url.PathEscape(inc.ID), kind, res.seq, res.queued), http.StatusSeeOther)
	}
}

// flash is the confirmation a redirect after a form asks for; only known
// codes are shown, so a link cannot put words in the dashboard's mouth.
func flash(q url.Values) string {
	n, _ := strconv.Atoi(q.Get("n"))
	seq, _ := strconv.Atoi(q.Get("seq"))
	switch q.Get("ok") {
	case "opened":
		return fmt.Sprintf("Incident opened. %d messages are on their way.", n)
	case "update":
		return fmt.Sprintf("Update #%d posted. %d messages are on their way.", seq, n)
	case "resolve":
		return fmt.Sprintf("Incident resolved (entry #%d). %d messages are on their way.", seq, n)
	case "sent":
		return fmt.Sprintf("Planned %d messages; this page follows them.", n)
	case "again":
		return "This was already sent: it was not sent a second time. Here is its progress."
	case "repeat":
		return "An identical message was sent a short while ago (this one): yours was not sent again. To send it anyway, check it again and press “Send it again”."
	}
	return ""
}

// joinErrors is a field error list as one sentence.
func joinErrors(err error) string {
	var fe fieldErrors
	fe.fromList(err, nil)
	var parts []string
	for _, e := range fe.Summary {
		parts = append(parts, e.Label+": "+e.Msg)
	}
	return strings.Join(parts, "; ")
}
