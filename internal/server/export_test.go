package server

// RateLimited exposes the rate-limited routes to the external tests.
var RateLimited = rateLimited

// LimitedRoute exposes limitedRoute to the external tests.
var LimitedRoute = limitedRoute
