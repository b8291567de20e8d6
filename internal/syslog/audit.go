package syslog

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/kluis-nl/kluis/internal/store"
)

// auditBatch bounds the entries sent in one database transaction.
const auditBatch = 200

// auditEntry is the JSON body of an audit message: every field of the
// entry, with its place in the hash chain, so a SIEM holds a copy that
// `kluis admin audit verify` logic can check too.
type auditEntry struct {
	ID       int64  `json:"id"`
	At       string `json:"at"`
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Object   string `json:"object,omitempty"`
	Result   string `json:"result"`
	IP       string `json:"ip,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Role     string `json:"role,omitempty"`
	Reason   string `json:"reason,omitempty"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AuditMessages turns entries into messages with facility "log audit",
// MSGID "audit" and the entry's id as [meta sequenceId], so a receiver can
// drop an entry it already has (delivery is at least once).
func AuditMessages(rows []*store.AuditRow) []Message {
	msgs := make([]Message, 0, len(rows))
	for _, a := range rows {
		body, _ := json.Marshal(auditEntry{ID: a.ID, At: a.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			Actor: a.Actor, Action: a.Action, Object: a.Object, Result: a.Result, IP: a.IP, Detail: a.Detail,
			Role: a.Role, Reason: a.Reason, PrevHash: hex.EncodeToString(a.PrevHash), Hash: hex.EncodeToString(a.Hash)})
		sev := Notice
		if a.Result != "ok" {
			sev = Warning
		}
		msgs = append(msgs, Message{Facility: AuditFacility, Severity: sev, Time: a.At, MsgID: "audit", SeqID: a.ID, Body: body})
	}
	return msgs
}

// ForwardAudit sends committed audit entries to w, oldest first, every
// interval until ctx ends. The database keeps how far it got (table
// audit_forward), so a restart, another instance or a receiver that was
// away continues where sending stopped; entries are sent at least once.
//
// When ctx ends it makes one last pass, for at most two seconds, so the
// entries of the shutdown itself go out too.
func ForwardAudit(ctx context.Context, db *store.DB, w *Writer, interval time.Duration, log *slog.Logger) error {
	failing, final := false, false
	for {
		pass := ctx
		var cancel context.CancelFunc = func() {}
		if ctx.Err() != nil {
			final = true
			pass, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		}
		for {
			n, err := db.ForwardAudit(pass, "syslog", auditBatch, func(b []*store.AuditRow) error {
				return w.Send(pass, AuditMessages(b)...)
			})
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				if !failing {
					// Said once per outage, not every interval.
					log.Warn("audit entries not sent to syslog; they wait in the database and are sent when the receiver is back", "err", err)
					failing = true
				}
				break
			}
			if failing {
				log.Info("audit entries are sent to syslog again")
				failing = false
			}
			if n < auditBatch {
				break
			}
		}
		cancel()
		if final {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}
