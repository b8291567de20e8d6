package local

import "os"

// linkRename is an atomic no-replace rename for systems without one: link(2)
// fails when newpath exists. A crash between the link and the remove leaves
// a second name for the blob in the temp folder, which CollectTemp removes
// without touching the blob.
func linkRename(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	// The blob is in place; a leftover temp name is only garbage.
	os.Remove(oldpath)
	return nil
}
