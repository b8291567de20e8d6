//go:build !linux

package local

// renameNoReplace moves oldpath to newpath, failing with an error matching
// fs.ErrExist when newpath exists. See linkRename.
func renameNoReplace(oldpath, newpath string) error {
	return linkRename(oldpath, newpath)
}
