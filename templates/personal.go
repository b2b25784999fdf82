package templates

import (
	"fmt"
	"text/template"
	"text/template/parse"

	"github.com/crier-dev/crier/channels"
)

// personalKey identifies one cached Personal answer.
type personalKey struct {
	event, locale string
	kind          channels.Kind
}

// personalAnswer is the analysis of one event × kind × locale: why it is
// personal regardless of AckURL ("" if not), and whether it uses AckURL.
type personalAnswer struct {
	why    string
	ackURL bool
}

// Personal reports whether rendering event × kind in locale can depend on which recipient it is for beyond
// RecipientLocale, RecipientTimeZone and RecipientNations: true when any block rendered for it (all parts,
// following {{template}} calls into partials, transitively) references .RecipientID or .RecipientName, or
// uses the dot/data in a way the analysis cannot follow (e.g. passes `.` or `$` whole to a function other than
// known-safe ones, uses `printf "%v" .`, ranges over/with on `.` itself in a way that could reach those
// fields…). When unsure it returns true. The result is cached per (event, kind, locale).
//
// The answer is about the templates only: the caller must still group
// recipients by everything else it puts into Data per recipient (for the
// planner, NextBriefing and NextUpdate, which it formats from the zone and
// locale; PreviousBriefing, with the Changes, ImpactChanges, New and
// Resolved derived from it; and Marking and Withheld, which depend on the
// channel). None of those identifies the recipient.
// RecipientNations is compared as an ordered list, since a template may
// print it. An unknown locale or an event × kind the locale cannot render
// (Has is false) is reported as personal, so the caller renders per
// recipient and gets Render's error for each.
//
// AckURL identifies the recipient too: it carries a token signed for one
// person, so a block that uses it makes the message personal. Data whose
// AckURL is empty cannot differ there; for such data PersonalWithoutAckURL
// is the sharper answer.
func (s *Set) Personal(event string, kind channels.Kind, locale string) bool {
	a := s.personalAnswer(event, kind, locale)
	return a.why != "" || a.ackURL
}

// PersonalWithoutAckURL is Personal for data whose AckURL is empty (a
// trigger that asks for no acknowledgement, or no link configured): then
// a block that prints AckURL prints the same nothing for everyone, and
// only the other reasons count. Alert emails thus stay rendered once per
// group unless they carry acknowledgement links.
func (s *Set) PersonalWithoutAckURL(event string, kind channels.Kind, locale string) bool {
	return s.personalAnswer(event, kind, locale).why != ""
}

func (s *Set) personalAnswer(event string, kind channels.Kind, locale string) personalAnswer {
	key := personalKey{event: event, locale: locale, kind: kind}
	if v, ok := s.personal.Load(key); ok {
		return v.(personalAnswer)
	}
	a := s.analyse(event, kind, locale)
	s.personal.Store(key, a) // a racing duplicate computes the same answer
	return a
}

// personalWhy is Personal uncached, with the first reason found ("" when
// not personal) so that tests and logs can say which action made a message
// personal.
func (s *Set) personalWhy(event string, kind channels.Kind, locale string) (bool, string) {
	a := s.analyse(event, kind, locale)
	if a.why == "" && a.ackURL {
		return true, "uses .AckURL"
	}
	return a.why != "", a.why
}

// analyse walks every block rendered for event × kind in locale.
func (s *Set) analyse(event string, kind channels.Kind, locale string) personalAnswer {
	ls := s.locales[locale]
	if ls == nil {
		return personalAnswer{why: fmt.Sprintf("no templates for locale %q", locale)}
	}
	if !s.Has(event, kind, locale) {
		return personalAnswer{why: fmt.Sprintf("%s/%s.%s cannot be rendered: a required part is missing", locale, event, kind)}
	}
	a := &analyzer{lookup: ls.text.Lookup, visited: map[string]bool{}}
	_, used := requiredParts(kind)
	for _, part := range used {
		// Subject and text parts execute in ls.text and html parts in
		// ls.html, but both were parsed from the same sources, and the
		// text trees are never rewritten (html/template escapes its own
		// copies lazily, so reading those would race with Render). The
		// escaper calls html/template adds only receive the values the
		// pipeline already produced, which this analysis checks.
		if name := blockName(event, kind, part); ls.has(name) {
			a.template(nil, name)
		}
	}
	return personalAnswer{why: a.why, ackURL: a.ackURL}
}

// value is what the analysis knows about a value in a template.
type value uint8

const (
	// shared values are built only from fields that every recipient in a
	// (locale, zone, nations) group shares, or from constants; no
	// recipient-identifying field can be reached from them, because no type
	// inside Data points back to Data.
	shared value = iota
	// whole may be the whole Data, from which .RecipientID and
	// .RecipientName can be reached.
	whole
)

// variable is one template variable ("$", "$x") in scope.
type variable struct {
	name string
	val  value
}

// analyzer walks parse trees with an abstract dot. Variables only ever
// rise from shared to whole (assignment joins, it never lowers), so one
// pass over an if/else covers both orders and a range body is walked
// until no variable rises.
type analyzer struct {
	lookup  func(name string) *template.Template
	visited map[string]bool // templates already walked with dot = whole
	tree    *parse.Tree     // the tree being walked, for locations
	vars    []variable      // innermost last, as text/template keeps them
	raised  bool            // a variable rose during the current range pass
	why     string          // the first reason the output is personal
	ackURL  bool            // the output may print AckURL
}

// flag records that the output may depend on the recipient.
func (a *analyzer) flag(n parse.Node, reason string) {
	if a.why != "" {
		return
	}
	loc := "?"
	if a.tree != nil && n != nil {
		loc, _ = a.tree.ErrorContext(n)
	}
	a.why = loc + ": " + reason
}

// template walks a template executed with the whole Data as dot and $. A
// template called with a shared value is never walked: nothing it can
// reach identifies the recipient.
func (a *analyzer) template(caller parse.Node, name string) {
	if a.visited[name] {
		return // already walked (or being walked, for a recursive partial)
	}
	a.visited[name] = true
	t := a.lookup(name)
	if t == nil || t.Tree == nil || t.Tree.Root == nil {
		a.flag(caller, fmt.Sprintf("calls template %q, which is not defined", name))
		return
	}
	savedTree, savedVars := a.tree, a.vars
	a.tree, a.vars = t.Tree, []variable{{name: "$", val: whole}}
	a.list(t.Tree.Root, whole)
	a.tree, a.vars = savedTree, savedVars
}

// list walks a list of nodes.
func (a *analyzer) list(l *parse.ListNode, dot value) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		a.node(n, dot)
	}
}

// node walks one node of a template body.
func (a *analyzer) node(n parse.Node, dot value) {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode:
	case *parse.ListNode:
		a.list(n, dot)
	case *parse.ActionNode:
		if v := a.pipe(n.Pipe, dot); v == whole && len(n.Pipe.Decl) == 0 {
			a.flag(n, "prints the whole data")
		}
	case *parse.IfNode:
		mark := len(a.vars)
		a.pipe(n.Pipe, dot) // only its truth is used
		a.list(n.List, dot)
		a.list(n.ElseList, dot)
		a.vars = a.vars[:mark]
	case *parse.WithNode:
		mark := len(a.vars)
		v := a.pipe(n.Pipe, dot) // {{with .}} keeps the whole data as dot
		a.list(n.List, v)
		a.list(n.ElseList, dot)
		a.vars = a.vars[:mark]
	case *parse.RangeNode:
		a.rangeNode(n, dot)
	case *parse.TemplateNode:
		arg := shared // {{template "x"}} executes x with nil dot
		if n.Pipe != nil {
			arg = a.pipe(n.Pipe, dot)
		}
		if arg == whole {
			a.template(n, n.Name)
		}
	default:
		a.flag(n, fmt.Sprintf("uses a %T the analysis does not know", n))
	}
}

// rangeNode walks {{range}}: the elements of a shared value are shared;
// ranging over the whole Data is not something the analysis follows.
func (a *analyzer) rangeNode(n *parse.RangeNode, dot value) {
	mark := len(a.vars)
	over := a.cmds(n.Pipe, dot)
	if over == whole {
		a.flag(n, "ranges over the whole data")
	}
	for _, d := range n.Pipe.Decl {
		a.declare(d, d.Ident[0], over, n.Pipe.IsAssign)
	}
	outer, rose := a.raised, false
	for {
		a.raised = false
		body := len(a.vars)
		a.list(n.List, over)
		a.vars = a.vars[:body]
		rose = rose || a.raised
		if !a.raised {
			break
		}
	}
	a.raised = outer || rose
	a.list(n.ElseList, dot)
	a.vars = a.vars[:mark]
}

// pipe evaluates a pipeline and declares or assigns its variables.
func (a *analyzer) pipe(p *parse.PipeNode, dot value) value {
	v := a.cmds(p, dot)
	for _, d := range p.Decl {
		a.declare(d, d.Ident[0], v, p.IsAssign)
	}
	return v
}

// cmds evaluates a pipeline's commands, each result passed as the last
// argument of the next command.
func (a *analyzer) cmds(p *parse.PipeNode, dot value) value {
	var v value
	for i, c := range p.Cmds {
		var prev *value
		if i > 0 {
			prev = &v
		}
		v = a.command(c, dot, prev)
	}
	return v
}

// declare pushes a variable ({{$x := …}}) or assigns one ({{$x = …}}).
func (a *analyzer) declare(n parse.Node, name string, v value, assign bool) {
	if !assign {
		a.vars = append(a.vars, variable{name: name, val: v})
		return
	}
	for i := len(a.vars) - 1; i >= 0; i-- {
		if a.vars[i].name == name {
			if v == whole && a.vars[i].val != whole {
				a.vars[i].val = whole
				a.raised = true
			}
			return
		}
	}
	a.flag(n, "assigns "+name+", which is not in scope")
}

// command evaluates one command of a pipeline; prev is the previous
// command's result, which text/template passes as the final argument.
func (a *analyzer) command(c *parse.CommandNode, dot value, prev *value) value {
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
		args := make([]value, 0, len(c.Args))
		for _, arg := range c.Args[1:] {
			args = append(args, a.arg(arg, dot))
		}
		if prev != nil {
			args = append(args, *prev)
		}
		return a.call(c, id.Ident, args)
	}
	v := a.arg(c.Args[0], dot)
	// More arguments make a method call on a shared value (Data has no
	// methods), or fail at execution; either way the whole data must not
	// be among them.
	for _, arg := range c.Args[1:] {
		if a.arg(arg, dot) == whole {
			a.flag(c, "passes the whole data to a method")
		}
	}
	if prev != nil && *prev == whole {
		a.flag(c, "passes the whole data to a method")
	}
	return v
}

// call evaluates a function call. Every function crier provides, and
// every built-in, returns something derived from its arguments only, so
// shared arguments give a shared result. The whole data may only be
// given to and, or (which return an argument as it is) and not (a bool);
// any other function could print it (printf, html, js, urlquery, the
// escapers html/template adds) or fails on it, and either way the
// analysis cannot vouch for the output.
func (a *analyzer) call(n parse.Node, name string, args []value) value {
	got := shared
	for _, v := range args {
		if v == whole {
			got = whole
		}
	}
	if got == shared {
		return shared
	}
	switch name {
	case "and", "or":
		return whole
	case "not":
		return shared
	}
	a.flag(n, "passes the whole data to "+name)
	return shared
}

// arg evaluates one operand.
func (a *analyzer) arg(n parse.Node, dot value) value {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot
	case *parse.FieldNode:
		return a.fields(n, dot, n.Ident)
	case *parse.VariableNode:
		for i := len(a.vars) - 1; i >= 0; i-- {
			if a.vars[i].name == n.Ident[0] {
				return a.fields(n, a.vars[i].val, n.Ident[1:])
			}
		}
		a.flag(n, "uses "+n.Ident[0]+", which is not in scope")
		return whole
	case *parse.ChainNode:
		return a.fields(n, a.arg(n.Node, dot), n.Field)
	case *parse.PipeNode:
		return a.pipe(n, dot)
	case *parse.IdentifierNode:
		return a.call(n, n.Ident, nil)
	case *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
		return shared
	}
	a.flag(n, fmt.Sprintf("uses a %T the analysis does not know", n))
	return whole
}

// fields evaluates .A.B.C on v: on the whole data the first name decides.
func (a *analyzer) fields(n parse.Node, v value, names []string) value {
	if v != whole || len(names) == 0 {
		return v
	}
	switch dataField(names[0]) {
	case fieldShared:
	case fieldRecipient:
		a.flag(n, "uses ."+names[0])
	case fieldAckURL:
		a.ackURL = true
	default:
		a.flag(n, "uses ."+names[0]+", which the analysis does not know")
	}
	return shared
}

// fieldClass says whether a Data field can differ between recipients who
// share a locale, time zone and nations.
type fieldClass uint8

const (
	fieldUnknown   fieldClass = iota // not a Data field the analysis knows: treated as personal
	fieldShared                      // the same for every recipient in a group
	fieldRecipient                   // identifies the recipient
	fieldAckURL                      // identifies the recipient when set (see Set.Personal)
)

// dataField classifies a Data field by name. A field added to Data is
// unknown (so personal) until it is listed here; a test fails until then.
func dataField(name string) fieldClass {
	switch name {
	case "RecipientID", "RecipientName":
		return fieldRecipient
	case "AckURL":
		return fieldAckURL
	case "Event", "Trigger", "Now", "NowLocal",
		"RecipientLocale", "RecipientTimeZone", "RecipientNations",
		"IncidentID", "Title", "Severity", "Status", "Summary", "UpdateText", "OpenedAt", "UpdatedAt",
		"Impacts", "Timeline", "ImpactChanges", "Incidents", "BriefingName", "NextBriefing", "Subject", "Body", "DashboardURL",
		"ResolvedAt", "Marking", "Withheld", "NextUpdate", "NextUpdateAt",
		"Resolved", "PreviousBriefing", "NextBriefingAt",
		"AckRequired", "AckBy", "AckByAt", "AckReply":
		// NowLocal, NextBriefing, NextUpdate and PreviousBriefing are
		// formatted in the recipient's zone and language, which are part
		// of the group. PreviousBriefing (and the Changes, New and Resolved
		// derived from it) and Marking/Withheld (per channel) can differ
		// between recipients but do not identify one: the planner groups by
		// them. AckRequired is the same for a whole trigger, AckBy is
		// formatted in the zone and language, and AckReply depends on the
		// language only.
		return fieldShared
	}
	return fieldUnknown
}
