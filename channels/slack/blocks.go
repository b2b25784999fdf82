package slack

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/crier-dev/crier/channels"
)

// Slack's Block Kit limits (characters are counted as runes, like
// slack-go's TextBlockObject.Validate).
const (
	maxTextObject = 3000  // one text object (section, context element)
	maxHeader     = 150   // a header block's plain_text
	maxBlocks     = 50    // blocks in one message
	maxFallback   = 40000 // Slack truncates the top-level text beyond this
)

// Escape makes untrusted text safe for Slack mrkdwn and the top-level text:
// & < > become &amp; &lt; &gt;. Escaping < and > also stops mention
// injection such as <!channel> or <@U123>.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// layout is what one chat.postMessage carries: the fallback text and the
// blocks.
type layout struct {
	fallback string
	blocks   []slack.Block
}

// messageLayout builds the blocks of a delivery: a header with the subject,
// the (already rendered and escaped) text split into sections, and a
// context line naming the delivery so a reader can find it in the log.
func messageLayout(m channels.Message) (layout, error) {
	var blocks []slack.Block
	if m.Subject != "" {
		// plain_text is not parsed for mentions; it is escaped anyway so that
		// no raw "<!channel>" from an incident title reaches Slack in any
		// field (Slack's formatting rules decode exactly these three
		// entities for display).
		blocks = append(blocks, slack.NewHeaderBlock(
			slack.NewTextBlockObject(slack.PlainTextType, escapeLimit(m.Subject, maxHeader), true, false)))
	}
	for _, part := range splitText(m.Text, maxTextObject) {
		blocks = append(blocks, slack.NewSectionBlock(
			slack.NewTextBlockObject(slack.MarkdownType, part, false, false), nil, nil))
	}
	if b := ackButton(m.Metadata); b != nil {
		blocks = append(blocks, b)
	}
	if m.Key != "" {
		blocks = append(blocks, slack.NewContextBlock("",
			slack.NewTextBlockObject(slack.MarkdownType, "delivery "+escapeLimit(m.Key, maxTextObject-len("delivery ")), false, false)))
	}
	if len(blocks) > maxBlocks {
		return layout{}, fmt.Errorf("message needs %d blocks, Slack allows %d: shorten the text (%d characters)",
			len(blocks), maxBlocks, utf8.RuneCountInString(m.Text))
	}
	return layout{fallback: fallbackText(m.Subject, m.Text), blocks: blocks}, nil
}

// AckActionID is the action_id of the Acknowledge button; crier's Slack
// interaction webhook records a click on it.
const AckActionID = "crier_ack"

// ackButton is the Acknowledge button of a message that asks for
// acknowledgement, or nil: with md["ack_token"] an interactive button
// whose value is the token (Slack posts the click, signed, to crier's
// interaction webhook); otherwise with md["ack_url"] a link button that
// opens crier's confirm page (for a Slack app without interactivity).
func ackButton(md map[string]string) slack.Block {
	label := slack.NewTextBlockObject(slack.PlainTextType, "Acknowledge", false, false)
	if tok := md["ack_token"]; tok != "" {
		return slack.NewActionBlock(AckActionID, slack.NewButtonBlockElement(AckActionID, tok, label).WithStyle(slack.StylePrimary))
	}
	if u := md["ack_url"]; u != "" {
		return slack.NewActionBlock(AckActionID, slack.NewButtonBlockElement(AckActionID+"_link", "", label).WithURL(u).WithStyle(slack.StylePrimary))
	}
	return nil
}

// fallbackText is the top-level text that notifications, screen readers
// and old clients show instead of the blocks.
func fallbackText(subject, text string) string {
	s := text
	if subject != "" {
		s = Escape(subject) + "\n" + text
	}
	return truncate(s, maxFallback)
}

// summaryLayout is what the parent message becomes when a reply is posted
// into its thread: the escaped one-line status and a context line saying
// when it was updated (in each reader's own time zone, with a UTC fallback
// for clients that cannot format dates) and by which delivery. chat.update
// replaces all blocks, so the parent's original header and text give way to
// the current status; the history stays in the thread.
func summaryLayout(summary, key string, now time.Time) layout {
	now = now.UTC()
	ctx := fmt.Sprintf("updated <!date^%d^{date_short_pretty} {time}|%s> · details in thread",
		now.Unix(), now.Format("2 Jan 2006 15:04 UTC"))
	if key != "" {
		ctx += " · delivery " + Escape(key)
	}
	return layout{
		fallback: escapeLimit(summary, maxFallback),
		blocks: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, escapeLimit(summary, maxTextObject), false, false), nil, nil),
			slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, truncate(ctx, maxTextObject), false, false)),
		},
	}
}

// escapeLimit escapes s and cuts it so that the escaped form has at most
// max runes, never inside an entity; a cut ends with "…".
func escapeLimit(s string, max int) string {
	e := Escape(s)
	if utf8.RuneCountInString(e) <= max {
		return e
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		piece := Escape(string(r))
		k := utf8.RuneCountInString(piece)
		if n+k > max-1 {
			break
		}
		b.WriteString(piece)
		n += k
	}
	return b.String() + "…"
}

// truncate cuts s to at most max runes, ending with "…" when cut.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)
	return string(runes[:max-1]) + "…"
}

// splitText cuts rendered mrkdwn into pieces of at most max runes,
// preferring a line break, then a space, and never cutting inside an
// entity (&amp;) or a <…> link or mention. An empty text gives no pieces.
func splitText(s string, max int) []string {
	var parts []string
	for s != "" {
		if utf8.RuneCountInString(s) <= max {
			parts = append(parts, s)
			break
		}
		cut := byteOffset(s, max)
		head := s[:cut]
		if i := strings.LastIndexByte(head, '\n'); i > 0 {
			cut = i + 1
		} else if i := strings.LastIndexByte(head, ' '); i > 0 {
			cut = i + 1
		} else {
			cut = safeCut(head)
		}
		part := strings.TrimRight(s[:cut], "\n")
		if part != "" {
			parts = append(parts, part)
		}
		s = s[cut:]
	}
	return parts
}

// safeCut moves a hard cut at the end of head back before an unfinished
// <…> token or &…; entity, unless that would leave nothing.
func safeCut(head string) int {
	cut := len(head)
	if i := strings.LastIndexByte(head, '<'); i > 0 && !strings.Contains(head[i:], ">") {
		cut = i
	}
	if i := strings.LastIndexByte(head[:cut], '&'); i > 0 && cut-i < 10 && !strings.Contains(head[i:cut], ";") {
		cut = i
	}
	return cut
}

// byteOffset returns the byte offset of the n-th rune of s (len(s) when s
// is shorter).
func byteOffset(s string, n int) int {
	i := 0
	for off := range s {
		if i == n {
			return off
		}
		i++
	}
	return len(s)
}
