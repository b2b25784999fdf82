package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/slack-go/slack"

	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
)

// Slack's interaction webhook: a click on the Acknowledge button the Slack
// channel adds to messages that ask for acknowledgement. Slack signs each
// request with the app's signing secret over its timestamp and raw body;
// crier checks that (and that the timestamp is within five minutes)
// before it reads anything else, so a forged or replayed-late request
// changes nothing. A replay inside the five minutes finds the
// acknowledgement already recorded: recording is idempotent.

// SlackInteractionsPath is the route Slack's interactivity request URL
// must point at, under server.public_url.
const SlackInteractionsPath = "/webhooks/slack/interactions"

// SlackAckActionID is the action_id of crier's Acknowledge button.
const SlackAckActionID = "crier_ack"

// slack answers one interaction. Slack wants a 200 within three seconds
// whatever the outcome (anything else is shown to the user as an error
// and retried), so only an unverifiable request gets anything but 200.
func (h *ackHooks) slack(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.s.o.MaxBody))
	if err != nil {
		h.s.observe(SlackInteractionsPath, "too_large")
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, h.o.SlackSigningSecret.Reveal())
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		outcome := "bad_signature"
		if errors.Is(err, slack.ErrExpiredTimestamp) {
			outcome = "stale"
		}
		h.s.observe(SlackInteractionsPath, outcome)
		// The reason is Slack's own words (missing headers, invalid
		// signature, timestamp too old); it carries no secret.
		http.Error(w, "slack signature not verified: "+err.Error(), http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	var cb slack.InteractionCallback
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &cb)
	}
	if err != nil {
		h.s.observe(SlackInteractionsPath, "bad_payload")
		http.Error(w, "the payload field is not an interaction", http.StatusBadRequest)
		return
	}
	if cb.Type != slack.InteractionTypeBlockActions {
		h.s.observe(SlackInteractionsPath, "ignored")
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a.ActionID != SlackAckActionID {
			continue
		}
		h.s.observe(SlackInteractionsPath, h.slackAck(r, a.Value, cb.User.ID))
	}
	w.WriteHeader(http.StatusOK)
}

// slackAck records one button click and returns its outcome.
func (h *ackHooks) slackAck(r *http.Request, token, user string) string {
	claim, err := h.o.Tokens.Verify(token, h.o.Now())
	switch {
	case errors.Is(err, dispatch.ErrAckTokenExpired):
		return "expired"
	case err != nil:
		h.s.o.Log.Warn("slack acknowledgement with a token that does not verify", "slack_user", user)
		return "invalid"
	}
	t, err := h.o.Store.AckLinkTarget(r.Context(), claim.TriggerID, claim.SubscriberID, claim.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return "not_found"
	}
	if err == nil {
		var res store.AckResult
		res, err = h.o.Store.RecordAck(r.Context(), t.DeliveryID, "slack", user)
		if err == nil && !res.Recorded {
			return "duplicate"
		}
	}
	if err != nil {
		h.s.o.Log.Error("record slack acknowledgement", "trigger", t.TriggerKey, "err", err)
		return "error"
	}
	h.s.o.Log.Info("acknowledged in slack", "trigger", t.TriggerKey, "subscriber", t.SubscriberID, "delivery", t.DeliveryID, "slack_user", user)
	if h.o.Acked != nil {
		h.o.Acked(t.TriggerID)
	}
	return "acknowledged"
}
