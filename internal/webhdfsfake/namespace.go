package webhdfsfake

import (
	"slices"
	"strings"
	"time"
)

// inode is a file or directory of the fake's namespace.
type inode struct {
	name     string
	dir      bool
	children map[string]*inode // of a directory
	data     []byte            // of a file
	mtime    time.Time
	owner    string
	perm     string // octal, as a status shows it
}

// namespace is the fake's file tree, in memory. Its methods take clean
// absolute paths (see splitPath) and leave locking to the Server.
type namespace struct {
	root *inode
	now  func() time.Time
}

func newNamespace(now func() time.Time) *namespace {
	return &namespace{root: &inode{name: "", dir: true, children: map[string]*inode{}, mtime: now(), owner: "hdfs", perm: "755"}, now: now}
}

// splitPath checks an HDFS path and returns its components. A path must be
// absolute; empty components (a doubled or trailing slash) are skipped, as
// Hadoop's Path normalises them, and "." and ".." are refused, as HDFS
// refuses them in a name.
func splitPath(p string) ([]string, *RemoteException) {
	if !strings.HasPrefix(p, "/") {
		return nil, illegalArgument("Invalid path name %q: not absolute", p)
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			continue
		case ".", "..":
			return nil, hadoopIllegalArgument("Invalid path name %s", p)
		}
		parts = append(parts, c)
	}
	return parts, nil
}

// lookup returns the inode at parts, or nil.
func (ns *namespace) lookup(parts []string) *inode {
	n := ns.root
	for _, c := range parts {
		if !n.dir {
			return nil
		}
		n = n.children[c]
		if n == nil {
			return nil
		}
	}
	return n
}

// mkdirs makes the directory at parts and its missing parents, new ones
// with permission perm.
func (ns *namespace) mkdirs(parts []string, owner, perm string) (*inode, *RemoteException) {
	n := ns.root
	for i, c := range parts {
		child := n.children[c]
		if child == nil {
			child = &inode{name: c, dir: true, children: map[string]*inode{}, mtime: ns.now(), owner: owner, perm: perm}
			n.children[c] = child
			n.mtime = ns.now()
		}
		if !child.dir {
			return nil, parentNotDirectory("/%s (is not a directory)", strings.Join(parts[:i+1], "/"))
		}
		n = child
	}
	return n, nil
}

// create makes the file at parts with data and permission perm, its
// parents too, as FileSystem.create does.
func (ns *namespace) create(parts []string, data []byte, overwrite bool, owner, perm string) *RemoteException {
	if len(parts) == 0 {
		return fileAlreadyExists("/ already exists as a directory")
	}
	parent, rerr := ns.mkdirs(parts[:len(parts)-1], owner, "755")
	if rerr != nil {
		return rerr
	}
	name := parts[len(parts)-1]
	if old := parent.children[name]; old != nil {
		switch {
		case old.dir:
			return fileAlreadyExists("/%s already exists as a directory", strings.Join(parts, "/"))
		case !overwrite:
			return fileAlreadyExists("/%s for client 127.0.0.1 already exists", strings.Join(parts, "/"))
		}
	}
	parent.children[name] = &inode{name: name, data: data, mtime: ns.now(), owner: owner, perm: perm}
	parent.mtime = ns.now()
	return nil
}

// file returns the file at parts, or the exception for its absence.
func (ns *namespace) file(parts []string) (*inode, *RemoteException) {
	n := ns.lookup(parts)
	switch {
	case n == nil:
		return nil, fileNotFound("File does not exist: /%s", strings.Join(parts, "/"))
	case n.dir:
		return nil, fileNotFound("Path is not a file: /%s", strings.Join(parts, "/"))
	}
	return n, nil
}

// rename moves src to dst with the outcomes of HDFS's boolean rename:
// false when src is missing, dst's parent is missing or a file, dst is an
// existing file, or dst is inside src; into dst when dst is a directory.
func (ns *namespace) rename(src, dst []string) bool {
	if len(src) == 0 {
		return false
	}
	n := ns.lookup(src)
	if n == nil {
		return false
	}
	if slices.Equal(src, dst) {
		return !n.dir // a file renamed onto itself is a no-op that succeeds
	}
	if len(dst) >= len(src) && slices.Equal(dst[:len(src)], src) {
		return false
	}
	target := ns.lookup(dst)
	if target != nil {
		if !target.dir {
			return false
		}
		dst = append(slices.Clone(dst), n.name)
		if ns.lookup(dst) != nil {
			return false
		}
	}
	if len(dst) == 0 {
		return false
	}
	parent := ns.lookup(dst[:len(dst)-1])
	if parent == nil || !parent.dir {
		return false
	}
	oldParent := ns.lookup(src[:len(src)-1])
	delete(oldParent.children, n.name)
	oldParent.mtime = ns.now()
	n.name = dst[len(dst)-1]
	parent.children[n.name] = n
	parent.mtime = ns.now()
	return true
}

// remove deletes the inode at parts: false when it is missing or is the
// root; a non-empty directory only when recursive.
func (ns *namespace) remove(parts []string, recursive bool) (bool, *RemoteException) {
	if len(parts) == 0 {
		return false, nil
	}
	n := ns.lookup(parts)
	if n == nil {
		return false, nil
	}
	if n.dir && len(n.children) > 0 && !recursive {
		return false, pathIsNotEmptyDirectory("`/%s is non empty': Directory is not empty", strings.Join(parts, "/"))
	}
	parent := ns.lookup(parts[:len(parts)-1])
	delete(parent.children, n.name)
	parent.mtime = ns.now()
	return true, nil
}
