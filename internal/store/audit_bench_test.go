package store

import (
	"context"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// BenchmarkAuditInsert measures one audit entry written in its own
// committed transaction (the cost every audited request pays), alone and
// with parallel writers, on SQLite and PostgreSQL.
func BenchmarkAuditInsert(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := OpenSQLite(context.Background(), b.TempDir()+"/kluis.db")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchAuditInsert(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		db, err := OpenPostgres(context.Background(), storetest.Postgres(b))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchAuditInsert(b, db)
	})
}

func benchAuditInsert(b *testing.B, db *DB) {
	ctx := context.Background()
	one := func() error {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		a := &AuditRow{At: time.Now(), Actor: "sender:a@example.nl", Action: "file.download", Object: "tr0123456789abcdef", Result: "ok", IP: "192.0.2.1", Detail: "file_index=0 size=1000"}
		if err := tx.InsertAudit(ctx, a); err != nil {
			return err
		}
		return tx.Commit()
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := one(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := one(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
