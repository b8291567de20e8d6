package web

import (
	"net/http"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// Mux is where Register adds the routes: an *http.ServeMux, or a wrapper
// of one (the server's records patterns and adds rate limits).
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Register adds the pages to mux.
func (h *Web) Register(mux Mux) {
	mux.HandleFunc("GET /{$}", h.home)
	mux.HandleFunc("GET /send", h.send)
	mux.HandleFunc("POST /send/verify", h.verifyStart)
	mux.HandleFunc("POST /send/confirm", h.verifyConfirm)
	mux.HandleFunc("POST /send/review", h.review)
	mux.HandleFunc("POST /send/transfer", h.createTransfer)
	mux.HandleFunc("POST /send/preview", h.preview)
	mux.HandleFunc("GET /help", h.help)
	mux.HandleFunc("GET /help/send", h.sendHelp)
	mux.HandleFunc("GET /accessibility", h.accessibility)
	mux.HandleFunc("GET /privacy", h.privacy)
	mux.HandleFunc("GET /lang", h.setLang)

	mux.HandleFunc("GET /receive", h.receiveForm)
	mux.HandleFunc("POST /receive", h.receiveCode)
	mux.HandleFunc("GET /r/{access}", h.link)
	mux.HandleFunc("POST /r/{access}/unlock", h.unlock)
	mux.HandleFunc("GET /r/{access}/code", h.codeForm)
	mux.HandleFunc("POST /r/{access}/code", h.code)
	mux.HandleFunc("GET /r/{access}/open", h.open)
	mux.HandleFunc("GET /r/{access}/login", h.login)
	mux.HandleFunc("GET /r/{access}/login/start", h.loginStart)
	mux.HandleFunc("GET "+transfer.LoginCallbackPath, h.loginCallback)
	mux.HandleFunc("GET /r/{access}/files/{fid}", h.downloadFile)
	mux.HandleFunc("GET /r/{access}/zip", h.downloadZip)
	mux.HandleFunc("GET /r/{access}/reply", h.limitReplies(h.replyForm))
	mux.HandleFunc("POST /r/{access}/reply", h.limitReplies(h.reply))

	mux.HandleFunc("GET /transfers", h.mine)
	mux.HandleFunc("GET /transfers/{id}", h.detail)
	mux.HandleFunc("POST /transfers/{id}/revoke", h.revoke)
	mux.HandleFunc("POST /transfers/{id}/extend", h.extend)
	mux.HandleFunc("POST /transfers/{id}/unlock", h.unblock)
	mux.HandleFunc("GET /transfers/{id}/unlock/{token}", h.unblockLink)
	mux.HandleFunc("GET /transfers/{id}/replies/{rid}", h.replyLink)
	mux.HandleFunc("POST /transfers/{id}/replies/{rid}/unlock", h.replyUnlock)
	mux.HandleFunc("GET /transfers/{id}/replies/{rid}/open", h.replyOpen)
	mux.HandleFunc("GET /transfers/{id}/replies/{rid}/files/{fid}", h.replyFile)
	mux.HandleFunc("GET /transfers/{id}/replies/{rid}/zip", h.replyZip)
	mux.HandleFunc("GET /inbox", h.inbox)
	mux.HandleFunc("POST /inbox", h.inboxCreate)
	mux.HandleFunc("POST /inbox/unlock", h.inboxUnlock)
	mux.HandleFunc("POST /inbox/lock", h.inboxLock)
	mux.HandleFunc("GET /requests", h.requests)
	mux.HandleFunc("POST /requests", h.requestCreate)
	mux.HandleFunc("GET /requests/{id}", h.request)
	mux.HandleFunc("POST /requests/{id}/revoke", h.requestRevoke)
	mux.HandleFunc("POST /requests/{id}/open", h.requestOpen)
	mux.HandleFunc("GET /requests/{id}/open", h.requestContents)
	mux.HandleFunc("GET /requests/{id}/files/{fid}", h.requestFile)
	mux.HandleFunc("GET /requests/{id}/zip", h.requestZip)
	mux.HandleFunc("GET /q/{access}", h.limitReplies(h.fileRequestForm))
	mux.HandleFunc("POST /q/{access}", h.limitReplies(h.fileRequestSend))
	mux.HandleFunc("POST /q/{access}/start", h.limitReplies(h.fileRequestStart))
	mux.HandleFunc("POST /q/{access}/done", h.limitReplies(h.fileRequestDone))
	mux.HandleFunc("POST /transfers/{id}/password", h.gatewayPasswordShow)
	mux.HandleFunc("GET /transfers/{id}/password/{token}", h.gatewayPasswordLink)
	mux.HandleFunc("POST /logout", h.logout)
	mux.HandleFunc("GET /logout", h.loggedOut)
	mux.HandleFunc("GET /sso/start", h.ssoStart)
	mux.HandleFunc("GET /sso/callback", h.ssoCallback)
	mux.HandleFunc("GET /admin", h.consoleIndex)
	mux.HandleFunc("GET /admin/transfers", h.consoleTransfersPage)
	mux.HandleFunc("GET /admin/transfers/{id}/revoke", h.consoleRevoke)
	mux.HandleFunc("POST /admin/transfers/{id}/revoke", h.consoleRevoke)
	mux.HandleFunc("POST /admin/transfers/bulk", h.consoleBulkRevoke)
	mux.HandleFunc("GET /admin/audit", h.consoleAuditPage)
	mux.HandleFunc("GET /admin/audit/export", h.consoleAuditExport)
	mux.HandleFunc("GET /admin/stats", h.consoleStatsPage)
	mux.HandleFunc("GET /admin/keys", h.consoleKeysPage)
	mux.HandleFunc("POST /admin/keys", h.consoleKeyCreate)
	mux.HandleFunc("GET /admin/keys/{id}", h.consoleKey)
	mux.HandleFunc("POST /admin/keys/{id}", h.consoleKey)

	mux.HandleFunc("GET /static/{sum}/{name...}", h.serveStatic)
}
