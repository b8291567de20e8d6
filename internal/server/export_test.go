package server

// RateLimited exposes the rate-limited routes to the external tests.
var RateLimited = rateLimited
