package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/config"
)

// runServe is `kluis serve`: the configuration from args and the
// environment, then the server (package app) until ctx ends.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, getenv, stdout)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	a, err := app.New(ctx, cfg, app.Options{Stdout: stdout, Log: log, Getenv: getenv, Version: version})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}
