package gomemcached

// Sub-document flags. Document flags go in the optional last byte of a
// sub-document command's extras; path flags with each path.
const (
	SUBDOC_FLAG_NONE              uint8 = 0x00
	SUBDOC_FLAG_MKDOC             uint8 = 0x01 // create the document if it does not exist
	SUBDOC_FLAG_ADD               uint8 = 0x02 // create the document; fail if it exists
	SUBDOC_FLAG_ACCESS_DELETED    uint8 = 0x04 // allow access to a deleted document's xattrs
	SUBDOC_FLAG_CREATE_AS_DELETED uint8 = 0x08 // with MKDOC or ADD: create it deleted
	SUBDOC_FLAG_REVIVED_DOC       uint8 = 0x10 // revive a deleted document

	SUBDOC_FLAG_NONE_PATH          uint8 = 0x00
	SUBDOC_FLAG_MKDIR_PATH         uint8 = 0x01 // create missing parents of the path
	SUBDOC_FLAG_XATTR_PATH         uint8 = 0x04 // the path is in the extended attributes
	SUBDOC_FLAG_EXPAND_MACRRO_PATH uint8 = 0x10 // expand macros in the value (xattrs only)
)

// SUBDOC_FLAG_XATTR is the path flag that selects extended attributes.
var SUBDOC_FLAG_XATTR uint8 = 0x04
