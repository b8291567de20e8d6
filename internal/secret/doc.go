// Package secret holds Kluis's key material: random ids and tokens, the
// master keyring, the per-transfer age identity and its wraps, and transfer
// passwords.
//
// Nothing here is cryptography of our own: every primitive comes from the
// standard library, golang.org/x/crypto or filippo.io/age's public API. This
// package only fixes parameters and formats, so that the rest of Kluis never
// picks a nonce size, a work factor or an encoding itself.
//
// # Ids and tokens
//
// Ids that appear in links ([NewID], [NewAccessID]) carry 128 bits from
// crypto/rand in lowercase base32, because base32 survives being read aloud,
// typed by hand ([FormatAccessID], [NormalizeAccessID]) and pasted into
// case-folding mail clients. Secrets that are only ever copied by machines
// ([NewLinkSecret], [NewToken]) use the shorter base64url. The database keeps
// only [HashToken] of a bearer token, so a copy of it cannot be replayed;
// compare secrets with [Equal] so timing reveals nothing.
//
// # Master keyring
//
// A [Keyring] seals database fields with XChaCha20-Poly1305. The associated
// data binds every sealed value to its format version, its key, its purpose
// and its row, so an attacker with write access to the database cannot move a
// value to another column or another transfer. The random 24-byte nonce makes
// nonce reuse negligible without any counter state shared between instances.
// The key id in each value prepares for rotation: a value sealed under another
// key is refused plainly instead of failing as random corruption.
//
// # Transfer identity
//
// Each transfer has its own age X25519 identity ([GenerateIdentity]). It is
// wrapped by the transfer secret with age's own scrypt recipient
// ([WrapIdentity]), so an operator can still unwrap it with the stock age
// tool, and the password is never stored. Unwrapping costs [PasswordLogN]
// scrypt work (see KDF.md for the measurements), so callers bound concurrent
// unlocks with a [Limiter].
//
// # Passwords
//
// [CheckPassword] follows ASVS 5.0 and NIST SP 800-63B: a minimum length, a
// generous maximum that is never silently truncated, a blocklist of common
// passwords, and no character-class rules. [GenerateWordPassword] makes
// passwords of seven words (about 90.5 bits) in the sender's language that can
// be read out over the phone; [GeneratePassword] made the older ones, groups of
// characters, which [NormalizeGeneratedPassword] still accepts.
package secret
