package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// ErrBusy is returned by [OpenSQLiteExclusive] when another process has
// the database open, which is almost always a running `kluis serve`.
var ErrBusy = errors.New("store: the database is in use by another process")

// OpenSQLiteExclusive opens the SQLite database at path for maintenance
// that must not run beside a server, such as a master key rotation. The
// single connection runs in exclusive locking mode and takes the lock at
// once; it keeps it until Close, so no other process can read or write in
// between. If another connection has the database open (in WAL mode every
// open connection, even an idle one, holds a shared lock), it waits at
// most busy and returns an error wrapping [ErrBusy]. Migrations are
// applied after the lock is taken.
func OpenSQLiteExclusive(ctx context.Context, path string, busy time.Duration) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "locking_mode(EXCLUSIVE)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "exclusive")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One connection that lives until Close: the lock belongs to it.
	sqldb.SetMaxOpenConns(1)
	sqldb.SetMaxIdleConns(1)
	sqldb.SetConnMaxIdleTime(0)
	sqldb.SetConnMaxLifetime(0)
	db := &DB{Q: Q{sqldb}, db: sqldb}
	if err := db.lockNow(ctx); err != nil {
		sqldb.Close()
		if isBusy(err) {
			return nil, fmt.Errorf("%w (%s): %v", ErrBusy, path, err)
		}
		return nil, fmt.Errorf("lock database %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		sqldb.Close()
		return nil, err
	}
	return db, nil
}

// lockNow takes the exclusive lock with an empty write transaction; in
// exclusive locking mode the connection keeps it after the commit.
func (db *DB) lockNow(ctx context.Context) error {
	tx, err := db.db.BeginTx(ctx, nil) // BEGIN EXCLUSIVE (_txlock)
	if err != nil {
		return err
	}
	// Writing a temporary table is not enough to take the database lock;
	// reading the schema is, and BEGIN EXCLUSIVE already asked for it.
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isBusy reports SQLITE_BUSY or SQLITE_LOCKED (also in extended codes).
func isBusy(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		c := coded.Code() & 0xff
		return c == 5 || c == 6
	}
	return false
}

// SealedColumn names a column whose values are sealed under the master key.
type SealedColumn struct {
	Table  string
	Column string
	// RowID is the SQL expression, over the table's columns, that gives the
	// row id the value was sealed with (say "id" or "lower(hex(id_hash))").
	RowID string
}

func (c SealedColumn) String() string { return c.Table + "." + c.Column }

// ResealFunc returns the new value for one sealed value, or nil to keep it
// as it is. An error stops [DB.Reseal] and rolls everything back.
type ResealFunc func(col SealedColumn, rowID string, sealed []byte) ([]byte, error)

// ResealCount is what [DB.Reseal] did in one column.
type ResealCount struct {
	Column   SealedColumn
	Resealed int // values rewritten
	Kept     int // values fn returned nil for
}

// Reseal runs fn over every non-NULL value of cols and writes the values
// it returns back, all in one transaction: either every value is rewritten
// or none is. Table and column names come from our own code, never from
// input. SQLite only (it pages by rowid); on PostgreSQL it returns an
// error.
func (db *DB) Reseal(ctx context.Context, cols []SealedColumn, fn ResealFunc) ([]ResealCount, error) {
	if db.dialect != SQLite {
		return nil, fmt.Errorf("reseal: %w", errSQLiteOnly)
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	counts := make([]ResealCount, 0, len(cols))
	for _, col := range cols {
		c := ResealCount{Column: col}
		// Page by rowid, so memory stays bounded and no cursor is open
		// while we write.
		var last int64 = -1 << 63
		for {
			type item struct {
				rowid  int64
				id     string
				sealed []byte
			}
			var batch []item
			rows, err := tx.tx.QueryContext(ctx, fmt.Sprintf(
				"SELECT rowid, %s, %s FROM %s WHERE %s IS NOT NULL AND rowid > ? ORDER BY rowid LIMIT 256",
				col.RowID, col.Column, col.Table, col.Column), last)
			if err != nil {
				return nil, fmt.Errorf("reseal %s: %w", col, err)
			}
			for rows.Next() {
				var it item
				if err := rows.Scan(&it.rowid, &it.id, &it.sealed); err != nil {
					rows.Close()
					return nil, fmt.Errorf("reseal %s: %w", col, err)
				}
				batch = append(batch, it)
			}
			if err := rows.Close(); err != nil {
				return nil, fmt.Errorf("reseal %s: %w", col, err)
			}
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("reseal %s: %w", col, err)
			}
			if len(batch) == 0 {
				break
			}
			for _, it := range batch {
				last = it.rowid
				out, err := fn(col, it.id, it.sealed)
				if err != nil {
					return nil, fmt.Errorf("reseal %s of row %s: %w", col, it.id, err)
				}
				if out == nil {
					c.Kept++
					continue
				}
				if _, err := tx.tx.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET %s = ? WHERE rowid = ?", col.Table, col.Column), out, it.rowid); err != nil {
					return nil, fmt.Errorf("reseal %s of row %s: %w", col, it.id, err)
				}
				c.Resealed++
			}
		}
		counts = append(counts, c)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("reseal: commit: %w", err)
	}
	return counts, nil
}

// Migration is one applied schema migration.
type Migration struct {
	Version   string
	AppliedAt time.Time
}

// Migrations lists the applied schema migrations, oldest version first.
func (q Q) Migrations(ctx context.Context) ([]Migration, error) {
	rows, err := q.q.QueryContext(ctx, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Migration
	for rows.Next() {
		var m Migration
		var at int64
		if err := rows.Scan(&m.Version, &at); err != nil {
			return nil, err
		}
		m.AppliedAt = fromMS(at)
		out = append(out, m)
	}
	return out, rows.Err()
}
