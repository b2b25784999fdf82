package subscribers

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readFile(t *testing.T, name string) ImportResult {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ReadCSV(f)
	if err != nil {
		t.Fatalf("ReadCSV(%s) error: %v", name, err)
	}
	return res
}

func TestReadCSV_GoodFile(t *testing.T) {
	res := readFile(t, "testdata/good.csv")
	if len(res.Errors) != 0 {
		t.Fatalf("unexpected row errors: %v", res.Errors)
	}
	want := []Subscriber{
		{ID: "min-health", Name: "Minister for Health", Roles: []string{"minister", "official"}, Nations: []string{"england"},
			Tags: []string{"cabinet"}, Locale: "en", TimeZone: "Europe/London", Email: "minister@health.example.gov.uk"},
		{ID: "dr-jones", Name: "Dr Rhian Jones", Roles: []string{"clinician"}, Nations: []string{"wales"},
			Tags: []string{"gp", "out-of-hours"}, Locale: "cy", TimeZone: "Europe/London", Phone: "+447400123457",
			QuietHours: &QuietHours{Start: "22:00", End: "07:00"}},
		{ID: "ops-room", Name: "Ops Room", Roles: []string{"responder"}, Nations: []string{"scotland", "northern-ireland"},
			Locale: "en", TimeZone: "Europe/London", Slack: "C0123ABCDE"},
		{ID: "smith.a", Name: "Alice Smith", Roles: []string{"clinician"}, Nations: []string{"northern-ireland"},
			Locale: "en", TimeZone: "UTC", Phone: "+447400123456", Email: "alice.smith@example.org", Slack: "U0123ABCDE",
			QuietHours: &QuietHours{Start: "23:30", End: "06:00"}},
	}
	if !reflect.DeepEqual(res.Subscribers, want) {
		t.Fatalf("subscribers\n got %+v\nwant %+v", res.Subscribers, want)
	}
}

func TestReadCSV_BadRows(t *testing.T) {
	res := readFile(t, "testdata/bad_rows.csv")
	var ids []string
	for _, s := range res.Subscribers {
		ids = append(ids, s.ID)
	}
	if want := []string{"good-1", "good-2"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("imported ids = %q, want %q", ids, want)
	}
	want := []struct {
		line  int
		col   string
		value string
		text  string
	}{
		{3, "phone", "0123", `line 3, column phone: "0123": not a valid phone number: use an international form like +447400123456`},
		{5, "nations", "atlantis", `line 5, column nations: "atlantis": unknown nation`},
		{6, "quiet_hours", "22:00 to 07:00", `line 6, column quiet_hours: "22:00 to 07:00": not a time window`},
	}
	if len(res.Errors) != len(want) {
		t.Fatalf("got %d row errors, want %d: %v", len(res.Errors), len(want), res.Errors)
	}
	for i, w := range want {
		e := res.Errors[i]
		if e.Line != w.line || e.Column != w.col || e.Value != w.value || !strings.HasPrefix(e.Error(), w.text) {
			t.Errorf("error %d = %+v (%q), want line %d column %q value %q text starting %q", i, e, e.Error(), w.line, w.col, w.value, w.text)
		}
	}
}

func TestReadCSV_Rows(t *testing.T) {
	type rowErr struct {
		Line   int
		Column string
	}
	tests := []struct {
		name    string
		in      string
		wantIDs []string
		want    []rowErr
	}{
		{
			name:    "columns in any order and case",
			in:      "Phone,NAME,Id,Quiet Hours\n07400 123457,Bea,bea,21:00-06:30\n",
			wantIDs: []string{"bea"},
		},
		{
			name:    "byte order mark",
			in:      "\xEF\xBB\xBFid,name\nbom,With BOM\n",
			wantIDs: []string{"bom"},
		},
		{
			name:    "duplicate id is an error on the later line",
			in:      "id,name\nsam,Sam One\nkim,Kim\nSAM,Sam Two\n",
			wantIDs: []string{"sam", "kim"},
			want:    []rowErr{{4, "id"}},
		},
		{
			name:    "short row and long row, reading goes on",
			in:      "id,name,phone\na,A\nb,B,,extra\nc,C,\n",
			wantIDs: []string{"c"},
			want:    []rowErr{{2, ""}, {3, ""}},
		},
		{
			name:    "blank lines and empty rows are skipped, line numbers stay true",
			in:      "id,name,phone\n\na,A,\n,,\nb,B,0123\n",
			wantIDs: []string{"a"},
			want:    []rowErr{{5, "phone"}},
		},
		{
			name:    "every problem in a row",
			in:      "id,name,email,slack\nBad Id,,nope,#general\n",
			wantIDs: nil,
			want:    []rowErr{{2, "id"}, {2, "name"}, {2, "email"}, {2, "slack"}},
		},
		{
			name:    "quoted cell across lines keeps later line numbers right",
			in:      "id,name,tags\na,\"A\",\"x;\ny\"\nb,B,0\n",
			wantIDs: []string{"a", "b"},
		},
		{
			name:    "bare quote is a row error and reading goes on",
			in:      "id,name\na,A \"the\" one\nb,B\n",
			wantIDs: []string{"b"},
			want:    []rowErr{{2, ""}},
		},
		{
			name:    "opted_out column",
			in:      "id,name,opted_out\na,A,SMS;email\nb,B,fax\n",
			wantIDs: []string{"a"},
			want:    []rowErr{{3, "opted_out"}},
		},
		{
			name:    "header only",
			in:      "id,name\n",
			wantIDs: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ReadCSV(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ReadCSV error: %v", err)
			}
			var ids []string
			for _, s := range res.Subscribers {
				ids = append(ids, s.ID)
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("ids = %q, want %q", ids, tt.wantIDs)
			}
			var got []rowErr
			for _, e := range res.Errors {
				got = append(got, rowErr{e.Line, e.Column})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("row errors = %+v, want %+v\n%v", got, tt.want, res.Errors)
			}
		})
	}
}

func TestReadCSV_BadHeader(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		column string
		text   string
	}{
		{"unknown column", "id,name,pager\n", "pager", "line 1, column pager: unknown column: use only id, name,"},
		{"missing id", "name,phone\nAlice,+447400123456\n", "id", "line 1, column id: required column missing"},
		{"missing name", "id\nalice\n", "name", "required column missing: add a column named name"},
		{"repeated column", "id,name,Phone,phone\n", "phone", "column appears twice"},
		{"empty column name", "id,name,\n", "3", "empty column name"},
		{"empty input", "", "", "line 1: no header row"},
		{"only a BOM", "\xEF\xBB\xBF", "", "no header row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ReadCSV(strings.NewReader(tt.in))
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("ReadCSV error = %v, want a *RowError", err)
			}
			if re.Line != 1 || re.Column != tt.column || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error = %+v (%q), want line 1 column %q containing %q", re, err.Error(), tt.column, tt.text)
			}
			if len(res.Subscribers) != 0 || len(res.Errors) != 0 {
				t.Fatalf("a bad header still produced results: %+v", res)
			}
		})
	}
}

// failingReader returns some data, then an I/O error.
type failingReader struct{ data string }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadCSV_UnreadableInput(t *testing.T) {
	_, err := ReadCSV(&failingReader{data: "id,name\na,A\n"})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("ReadCSV error = %v, want the read error", err)
	}
}

func TestRowError_Error_Forms(t *testing.T) {
	tests := []struct {
		e    RowError
		want string
	}{
		{RowError{Line: 7, Column: "phone", Value: "0123", Msg: "bad"}, `line 7, column phone: "0123": bad`},
		{RowError{Line: 3, Msg: "has 2 cells"}, `line 3: has 2 cells`},
		{RowError{Line: 2, Column: "name", Msg: "missing"}, `line 2, column name: missing`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// BenchmarkReadCSV imports 1,000 valid rows per iteration.
func BenchmarkReadCSV(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("id,name,roles,nations,tags,locale,timezone,phone,email,slack,quiet_hours\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "person-%d,Person %d,clinician;gp,Wales;NI,tag%d,cy-GB,Europe/London,07400 %06d,Person.%d@Example.org,U%09d,22:00-07:00\n", i, i, i%10, 100000+i, i, i)
	}
	in := sb.String()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		res, err := ReadCSV(strings.NewReader(in))
		if err != nil || len(res.Errors) != 0 || len(res.Subscribers) != 1000 {
			b.Fatalf("err %v, %d row errors (first %v), %d subscribers", err, len(res.Errors), res.Errors[:min(1, len(res.Errors))], len(res.Subscribers))
		}
	}
}
