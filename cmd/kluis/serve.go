package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/syslog"
)

// runServe is `kluis serve`: the configuration from args and the
// environment, then the server (package app) until ctx ends.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, stopLog, err := serveLogger(cfg, stderr)
	if err != nil {
		return err
	}
	defer stopLog()
	a, err := app.New(ctx, cfg, app.Options{Stdout: stdout, Log: log, Getenv: getenv, Version: version})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

// serveLogger is the JSON log on stderr and, with --syslog-send log, the
// same lines to the syslog receiver. stop sends what is still queued
// (for at most a second) and closes the connection.
func serveLogger(cfg *config.Serve, stderr io.Writer) (_ *slog.Logger, stop func(), _ error) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	console := slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	if !cfg.SyslogSends("log") {
		return slog.New(console), func() {}, nil
	}
	w, err := syslog.New(cfg.SyslogConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("--syslog-addr: %w", err)
	}
	h := syslog.NewHandler(w, level)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	return slog.New(slog.NewMultiHandler(console, h)), func() { cancel(); <-done; w.Close() }, nil
}
