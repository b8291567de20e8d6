package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/server"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, getenv, stdout)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.BaseURLDefaulted {
		// With port 0 the real port is known only now.
		cfg.BaseURL = "http://" + ln.Addr().String()
	}
	defer ln.Close()
	keys, err := loadKeys(cfg, log)
	if err != nil {
		return err
	}
	dbPath := filepath.Join(cfg.DataDir, "kluis.db")
	// SQLite creates the WAL and shm files with the database's mode.
	if f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		f.Close()
	}
	db, err := store.OpenSQLite(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	blobs, err := local.New(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	tc := transfer.DefaultConfig()
	tc.BaseURL = cfg.BaseURL
	tc.MaxTransferSize = cfg.MaxTransferSize
	tc.DefaultExpiry, tc.MaxExpiry = cfg.DefaultExpiry, cfg.MaxExpiry
	tc.MaxRecipients = cfg.MaxRecipients
	tc.Retention = cfg.Retention
	tc.SessionTTL = cfg.SessionTTL
	tc.MaxFailures, tc.LockoutDuration = cfg.MaxFailures, cfg.Lockout
	tc.TempMaxAge = cfg.TempMaxAge
	tc.UnlockConcurrency = cfg.UnlockConcurrency
	svc := transfer.New(db, blobs, keys, tc, nil, log)

	h, err := server.New(server.Deps{Transfers: svc, Log: log})
	if err != nil {
		return err
	}
	bgCtx, stopBG := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	go func() { defer close(bgDone); svc.Run(bgCtx) }()

	url := "http://" + ln.Addr().String()
	log.Info("kluis started", "version", version, "listen", url, "base_url", cfg.BaseURL, "data", cfg.DataDir)
	fmt.Fprintf(stdout, "Kluis is running at %s/ (public address %s)\n", url, cfg.BaseURL)

	err = server.Serve(ctx, ln, h, cfg.ShutdownTimeout, log)
	stopBG()
	<-bgDone
	log.Info("kluis stopped")
	return err
}

func loadKeys(cfg *config.Serve, log *slog.Logger) (*secret.Keyring, error) {
	if cfg.MasterKey != "" {
		b, err := base64.StdEncoding.DecodeString(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("KLUIS_MASTER_KEY: not valid base64")
		}
		return secret.NewKeyring(b)
	}
	keys, created, err := secret.LoadOrCreateMasterKey(cfg.MasterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if created {
		log.Warn("generated a new master key; back it up: without it no stored transfer can be opened", "file", cfg.MasterKeyFile)
	}
	return keys, nil
}
