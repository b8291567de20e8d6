package sender

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
)

// TestAPIKeyExpiry: every key has an expiry within APIKeyMaxAge; it stops
// working at its expiry or when expired early; its last use is kept to the
// minute; a name too long or on two lines is refused.
func TestAPIKeyExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, clock, _ := newTestService(t)
	now := clock.Now()
	for _, bad := range []APIKeyRequest{
		{Email: "script@example.nl", Expires: now},
		{Email: "script@example.nl", Expires: now.Add(DefaultAPIKeyMaxAge + time.Minute)},
		{Email: "script@example.nl", Name: "twee\nregels", Expires: now.Add(time.Hour)},
		{Email: "script@example.nl", Name: strings.Repeat("x", MaxAPIKeyName+1), Expires: now.Add(time.Hour)},
		{Email: "geen adres", Expires: now.Add(time.Hour)},
	} {
		if _, _, err := s.IssueAPIKey(ctx, bad); code(err) != kluis.EINVALID {
			t.Errorf("IssueAPIKey(%+v): %v, want invalid", bad, err)
		}
	}
	id, key, err := s.IssueAPIKey(ctx, APIKeyRequest{Email: "script@example.nl", Name: "Zaaksysteem", Expires: now.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.APIKey(ctx, id)
	if err != nil || k.Name != "Zaaksysteem" || !k.ExpiresAt.Equal(now.Add(48*time.Hour)) || k.LastUsedAt != nil {
		t.Fatalf("key: %+v %v", k, err)
	}
	clock.Advance(time.Hour)
	if _, err := s.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if k, _ = s.APIKey(ctx, id); k.LastUsedAt == nil || !k.LastUsedAt.Equal(clock.Now()) {
		t.Errorf("last used: %v, want %v", k.LastUsedAt, clock.Now())
	}
	clock.Advance(47 * time.Hour)
	if _, err := s.Authenticate(ctx, key); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("at its expiry: %v, want unauthorized", err)
	}
	// Expiring early.
	id2, key2, err := s.CreateAPIKey(ctx, "script@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := s.APIKey(ctx, id2); !k.ExpiresAt.Equal(clock.Now().Add(DefaultAPIKeyMaxAge)) {
		t.Errorf("default expiry %v", k.ExpiresAt)
	}
	if err := s.ExpireAPIKey(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, key2); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("expired early: %v, want unauthorized", err)
	}
	if err := s.ExpireAPIKey(ctx, id2); code(err) != kluis.ENOTFOUND {
		t.Errorf("expiring twice: %v", err)
	}
	if _, err := s.APIKey(ctx, "nope"); code(err) != kluis.ENOTFOUND {
		t.Errorf("unknown key: %v", err)
	}
}
