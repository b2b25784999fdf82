package dashboard

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The chart of delivery outcomes: one small stacked-bar chart per
// channel, one bar per hour of the last day, drawn on the server as inline
// SVG (no script, no library), with the same numbers as a table for
// screen readers and for anyone who wants exact counts.

const (
	chartHours  = 24
	chartWidth  = 720
	chartHeight = 120
	chartLeft   = 40 // room for the y-axis label
	chartBottom = 18 // room for the hour labels
)

// chartClasses are the outcome classes, bottom of the stack first; each
// has a CSS class (fill) and a word for the legend and the table.
func chartClasses() []string { return []string{"delivered", "sent", "queued", "suppressed", "failed"} }

// chart is every channel's chart.
type chart struct {
	Since, Until time.Time
	Channels     []channelChart
	Classes      []string
	Empty        bool
}

// channelChart is one channel's bars and its text alternative.
type channelChart struct {
	ID      string // for aria-labelledby
	Channel string
	Max     int
	Summary string
	Bars    []bar
	Ticks   []tick
	Rows    []chartRow // non-empty hours, for the table
	W, H    int
	Top     int // the y of the axis maximum
	Base    int // the y of zero
	Left    int
}

type bar struct {
	Title string
	Rects []rect
}

type rect struct {
	Class      string
	X, Y, W, H int
}

type tick struct {
	X     int
	Label string
}

// chartRow is one hour of one channel in the table.
type chartRow struct {
	Hour   string
	Counts []int // in chartClasses order
	Total  int
}

// chartClass maps a delivery status to its outcome class.
func chartClass(status string) int {
	var c counts
	c.add(status, 1, 0)
	switch {
	case c.Delivered > 0:
		return 0
	case c.Sent > 0:
		return 1
	case c.Queued > 0:
		return 2
	case c.Suppressed > 0:
		return 3
	}
	return 4
}

// chart reads the last day's outcomes per channel and lays them out.
func (d *Dashboard) chart(ctx context.Context) (chart, error) {
	now := d.o.Now()
	since := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	buckets, err := d.o.Read.Outcomes(ctx, since, time.Hour)
	if err != nil {
		return chart{}, err
	}
	ch := chart{Since: since, Until: now, Classes: chartClasses()}
	grid := map[string]*[chartHours][5]int{}
	var order []string
	for _, b := range buckets {
		i := int(b.Start.Sub(since) / time.Hour)
		if i < 0 || i >= chartHours {
			continue
		}
		g := grid[b.Channel]
		if g == nil {
			g = &[chartHours][5]int{}
			grid[b.Channel] = g
			order = append(order, b.Channel)
		}
		g[i][chartClass(b.Status)] += b.N
	}
	ch.Empty = len(order) == 0
	for n, name := range order {
		ch.Channels = append(ch.Channels, d.layout(fmt.Sprintf("chart-%d", n), name, since, grid[name]))
	}
	return ch, nil
}

// layout turns one channel's counts into bars scaled to its busiest hour.
func (d *Dashboard) layout(id, name string, since time.Time, g *[chartHours][5]int) channelChart {
	cc := channelChart{ID: id, Channel: name, W: chartWidth, H: chartHeight, Left: chartLeft, Top: 8, Base: chartHeight - chartBottom}
	classes := chartClasses()
	var totals [5]int
	for _, h := range g {
		t := 0
		for k, n := range h {
			t += n
			totals[k] += n
		}
		cc.Max = max(cc.Max, t)
	}
	slot := (chartWidth - chartLeft) / chartHours
	plot := cc.Base - cc.Top
	for i, h := range g {
		start := since.Add(time.Duration(i) * time.Hour).In(d.o.Location)
		x := chartLeft + i*slot
		if i%3 == 0 {
			cc.Ticks = append(cc.Ticks, tick{X: x + slot/2, Label: start.Format("15:04")})
		}
		total := 0
		var words []string
		b := bar{}
		y := cc.Base
		for k, n := range h {
			if n == 0 {
				continue
			}
			total += n
			words = append(words, fmt.Sprintf("%d %s", n, classes[k]))
			ht := max(1, n*plot/max(cc.Max, 1))
			y -= ht
			b.Rects = append(b.Rects, rect{Class: "c-" + classes[k], X: x + 2, Y: y, W: slot - 4, H: ht})
		}
		if total == 0 {
			continue
		}
		hour := start.Format("15:04") + "–" + start.Add(time.Hour).Format("15:04 MST")
		b.Title = hour + ": " + strings.Join(words, ", ")
		cc.Bars = append(cc.Bars, b)
		cc.Rows = append(cc.Rows, chartRow{Hour: hour, Counts: h[:], Total: total})
	}
	var words []string
	for k, n := range totals {
		if n > 0 {
			words = append(words, fmt.Sprintf("%d %s", n, classes[k]))
		}
	}
	cc.Summary = fmt.Sprintf("%s, last %d hours: %s; busiest hour %d messages.", name, chartHours, strings.Join(words, ", "), cc.Max)
	return cc
}
