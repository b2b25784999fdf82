// Package metricstest reads a Prometheus text exposition the way a
// scraper does, so tests assert on what /metrics actually served rather
// than on the collectors behind it.
package metricstest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one series' value in one scrape. A histogram is flattened the
// way the text format writes it: name_bucket{le=…}, name_sum, name_count.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is one scrape.
type Samples []Sample

// Parse reads the text exposition format.
func Parse(r io.Reader) (Samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metricstest: parse exposition: %w", err)
	}
	var out Samples
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			out = append(out, flatten(name, f.GetType(), m, labels)...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func flatten(name string, typ dto.MetricType, m *dto.Metric, labels map[string]string) Samples {
	switch typ {
	case dto.MetricType_COUNTER:
		return Samples{{name, labels, m.GetCounter().GetValue()}}
	case dto.MetricType_GAUGE:
		return Samples{{name, labels, m.GetGauge().GetValue()}}
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		out := Samples{{name + "_count", labels, float64(h.GetSampleCount())}, {name + "_sum", labels, h.GetSampleSum()}}
		for _, b := range h.GetBucket() {
			l := maps.Clone(labels)
			l["le"] = fmt.Sprint(b.GetUpperBound())
			out = append(out, Sample{name + "_bucket", l, float64(b.GetCumulativeCount())})
		}
		return out
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		return Samples{{name + "_count", labels, float64(s.GetSampleCount())}, {name + "_sum", labels, s.GetSampleSum()}}
	}
	return Samples{{name, labels, m.GetUntyped().GetValue()}}
}

// Scrape GETs url with c (bearer token if not empty) and parses the answer.
// Anything but a 200 in the text format is an error.
func Scrape(ctx context.Context, c *http.Client, url, token string) (Samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metricstest: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, fmt.Errorf("metricstest: scrape %s: %s: %s", url, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return nil, fmt.Errorf("metricstest: scrape %s: Content-Type %q, want the text format", url, ct)
	}
	return Parse(resp.Body)
}

// Find returns the samples named name whose labels include every pair of match.
func (s Samples) Find(name string, match map[string]string) Samples {
	var out Samples
	for _, x := range s {
		if x.Name == name && includes(x.Labels, match) {
			out = append(out, x)
		}
	}
	return out
}

// Sum adds up the samples Find returns (0 when there are none).
func (s Samples) Sum(name string, match map[string]string) float64 {
	var v float64
	for _, x := range s.Find(name, match) {
		v += x.Value
	}
	return v
}

// Has reports whether any sample matches.
func (s Samples) Has(name string, match map[string]string) bool { return len(s.Find(name, match)) > 0 }

func includes(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// L builds a label match from pairs: L("channel", "sms", "status", "sent").
func L(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}
