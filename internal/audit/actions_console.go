package audit

// Actions of the admin console's mail queue (issue 19). Like the list in
// audit.go, keep docs/security.md in step.
const (
	MailRetry = "admin.mail_retry" // a waiting mail made due at once
	MailDrop  = "admin.mail_drop"  // a waiting mail deleted unsent, or a failed mail's record deleted
)
