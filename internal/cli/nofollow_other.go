//go:build !unix

package cli

// oNoFollow: this system has no O_NOFOLLOW; openPart checks with Lstat.
const oNoFollow = 0
