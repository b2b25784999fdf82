package slack

import (
	"context"
	"slices"
	"testing"

	"github.com/crier-dev/crier/channels/channeltest"
)

// ackElement returns the one element of the post's actions block.
func ackElement(t *testing.T, p channeltest.SlackPost) map[string]any {
	t.Helper()
	for _, b := range p.Blocks {
		if b["type"] != "actions" {
			continue
		}
		els, _ := b["elements"].([]any)
		if len(els) != 1 || b["block_id"] != AckActionID {
			t.Fatalf("actions block %v, want one element in block %s", b, AckActionID)
		}
		return els[0].(map[string]any)
	}
	return nil
}

func TestSender_Send_AckButton(t *testing.T) {
	tests := []struct {
		name     string
		metadata map[string]string
		want     map[string]any // fields of the button; nil for no button
	}{
		{"token: interactive button", map[string]string{"ack_token": "AQF0b2tlbg"},
			map[string]any{"type": "button", "action_id": "crier_ack", "value": "AQF0b2tlbg", "style": "primary"}},
		{"link: URL button", map[string]string{"ack_url": "https://crier.example.org/ack/AQF0b2tlbg"},
			map[string]any{"type": "button", "action_id": "crier_ack_link", "url": "https://crier.example.org/ack/AQF0b2tlbg", "style": "primary"}},
		{"token wins over link", map[string]string{"ack_token": "T", "ack_url": "https://x.example/ack/T"},
			map[string]any{"action_id": "crier_ack", "value": "T"}},
		{"no acknowledgement asked", map[string]string{"trigger": "update"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewSlackPeer(t)
			s := newSender(t, peer, nil)
			m := incidentMessage()
			m.Metadata = tt.metadata
			if _, err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			post := peer.Posts()[0]
			if post.Error != "" {
				t.Fatalf("the peer refused the post: %s", post.Error)
			}
			el := ackElement(t, post)
			if tt.want == nil {
				if el != nil {
					t.Errorf("a button on a message that asks for nothing: %v", el)
				}
				return
			}
			if el == nil {
				t.Fatalf("no actions block; blocks %v", blockTypes(post))
			}
			for k, v := range tt.want {
				if el[k] != v {
					t.Errorf("button %s = %v, want %v", k, el[k], v)
				}
			}
			if text, _ := el["text"].(map[string]any); text["type"] != "plain_text" || text["text"] != "Acknowledge" {
				t.Errorf("button label %v", el["text"])
			}
			// The button sits after the text and before the delivery's context line.
			types := blockTypes(post)
			if i := slices.Index(types, "actions"); i < 1 || types[len(types)-1] != "context" || i != len(types)-2 {
				t.Errorf("block order %v", types)
			}
		})
	}
}
