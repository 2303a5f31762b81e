package job

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Access is who owns the jobs a handle creates, and who may read them. On
// an ensemble shared by every user of a site, a job's znodes give all
// permissions to its owner's identities and nothing, or only read, to
// anyone else: an outsider can neither replace an item nor forge a result.
type Access struct {
	// DigestUser and DigestSecret are the digest identity (the
	// credentials file), empty for none.
	DigestUser, DigestSecret string
	// X509 is the client certificate's identity as ZooKeeper spells it
	// ("CN=alice,O=hpc"), empty for none.
	X509 string
	// PublicRead lets everyone read the job (zkdog status), never change it.
	PublicRead bool
	// From names where the identity came from (the credentials file), for
	// messages.
	From string
}

// Option adjusts a handle.
type Option func(*Job)

// WithAccess makes the handle create znodes with a's ACL, and check a job
// against a's identities (CheckAccess).
func WithAccess(a Access) Option {
	return func(j *Job) {
		j.access = a
		j.acl = a.acl()
	}
}

// WithLog names, on log, the records of the job the handle cannot read
// (a znode of the wrong shape, another version's record): once each, at
// warning level, with its path.
func WithLog(log *slog.Logger) Option {
	return func(j *Job) { j.log = log }
}

// unreadable names a record the handle passes over.
func (j *Job) unreadable(path string, err error) {
	if j.log == nil {
		return
	}
	if _, seen := j.named.LoadOrStore(path, true); !seen {
		j.log.Warn("passing over a znode this zkdog cannot read", "path", path, "err", err)
	}
}

// owners are the identities of a, each with every permission.
func (a Access) owners() []zk.ACL {
	var acl []zk.ACL
	if a.DigestUser != "" {
		acl = append(acl, zk.DigestACL(zk.PermAll, a.DigestUser, a.DigestSecret)...)
	}
	if a.X509 != "" {
		acl = append(acl, zk.ACL{Perms: zk.PermAll, Scheme: "x509", ID: a.X509})
	}
	return acl
}

func (a Access) acl() []zk.ACL {
	acl := a.owners()
	if a.PublicRead {
		acl = append(acl, zk.WorldACL(zk.PermRead)...)
	}
	if len(acl) == 0 {
		// No identity at all: nothing zkdog could protect with.
		return zk.WorldACL(zk.PermAll)
	}
	return acl
}

// Identity names a's identities for messages (never the secret).
func (a Access) Identity() string {
	var ids []string
	if a.DigestUser != "" {
		ids = append(ids, "digest:"+a.DigestUser)
	}
	if a.X509 != "" {
		ids = append(ids, "x509:"+a.X509)
	}
	if len(ids) == 0 {
		ids = append(ids, "no identity")
	}
	if a.From != "" {
		return strings.Join(ids, " and ") + " (credentials file " + a.From + ")"
	}
	return strings.Join(ids, " and ") + " (no credentials file)"
}

// CheckAccess is the first thing a command does with an existing job: it
// reads the job's ACL, refuses a job that anyone at all may change
// (ErrUnsafe), refuses an identity that may not read it, or, with write,
// not change it (ErrNoAccess), and makes the handle create its znodes
// with the job's own ACL. A digest credential is accepted by the server
// whatever the secret; only an access tells, so this one is made before
// anything is taken or changed.
func (j *Job) CheckAccess(write bool) error {
	acl, err := j.jobACL()
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%w at %s", ErrNoJob, j.L.Root)
	case errors.Is(err, zk.ErrNoAuth):
		return j.noAccess()
	case err != nil:
		return fmt.Errorf("reading the ACL of %s: %w", j.L.Root, err)
	}
	// What is not a job is said so first, whatever its ACL.
	if _, err := j.Spec(); err != nil {
		return err
	}
	if len(j.access.owners()) == 0 {
		// No identity to protect or check (a reader of a public job, a
		// test's open handle): what is readable is all there is.
		return nil
	}
	if open := openWriters(acl); len(open) > 0 {
		return fmt.Errorf("%w: %s lets %s change it, so anyone sharing the ensemble could replace its items or forge its results; it was made by hand or by an older zkdog: remove it and create it again", ErrUnsafe, j.L.Root, strings.Join(open, ", "))
	}
	if write && !j.mayWrite(acl) {
		return fmt.Errorf("%w: %s belongs to %s; %s may not change it; use its owner's credentials (--auth-file)", ErrNoAccess, j.L.Root, Owners(acl), j.access.Identity())
	}
	if write {
		j.acl = acl
	}
	return nil
}

func (j *Job) noAccess() error {
	return fmt.Errorf("%w: %s is private to its owner, and %s may not read it; use the owner's credentials (--auth-file)", ErrNoAccess, j.L.Root, j.access.Identity())
}

// jobACL reads the ACL of the root and of its fixed children, and returns
// the root's: a child left open under a private root would let anyone
// forge what it holds, so an open entry on any of them counts. They are
// read together, about one round trip.
func (j *Job) jobACL() ([]zk.ACL, error) {
	paths := []string{j.L.Root, j.L.Items(), j.L.Results(), j.L.Leases(), j.L.Retry(), j.L.Timers(),
		j.L.Cursor(), j.L.Done(), j.L.Failed(), j.L.Clock(), j.L.Workers(), j.L.Attempts(), j.L.Stats()}
	acls := make([][]zk.ACL, len(paths))
	fns := make([]func() error, len(paths))
	for i, p := range paths {
		fns[i] = func() error {
			acl, _, err := j.conn.GetACL(p)
			if errors.Is(err, zk.ErrNoNode) && i > 0 {
				return nil // a job partly removed is still checked by what is left
			}
			acls[i] = acl
			return err
		}
	}
	if err := parallel(len(fns), fns...); err != nil {
		return nil, err
	}
	root := acls[0]
	for _, acl := range acls[1:] {
		for _, e := range acl {
			if e.Perms&^zk.PermRead != 0 && e.Scheme != "digest" && e.Scheme != "x509" {
				root = append(slices.Clone(root), e) // named by openWriters
			}
		}
	}
	return root, nil
}

// openWriters lists the ACL entries that let anyone, rather than an
// identity, change a node: world, ip, or anything but digest and x509.
func openWriters(acl []zk.ACL) []string {
	var out []string
	for _, e := range acl {
		if e.Perms&^zk.PermRead != 0 && e.Scheme != "digest" && e.Scheme != "x509" {
			out = append(out, e.Scheme+":"+e.ID)
		}
	}
	return out
}

// Owners names the identities an ACL gives more than read, as people know
// them (a digest entry is USER:HASH; the hash is left out).
func Owners(acl []zk.ACL) string {
	var ids []string
	for _, e := range acl {
		if e.Perms&^zk.PermRead == 0 {
			continue
		}
		id := e.ID
		if e.Scheme == "digest" {
			id, _, _ = strings.Cut(id, ":")
		}
		ids = append(ids, e.Scheme+":"+id)
	}
	if len(ids) == 0 {
		return "nobody"
	}
	return strings.Join(ids, " and ")
}

// mayWrite: one of this handle's identities has every permission a
// worker needs.
func (j *Job) mayWrite(acl []zk.ACL) bool {
	const need = zk.PermRead | zk.PermWrite | zk.PermCreate | zk.PermDelete
	for _, m := range j.access.owners() {
		for _, e := range acl {
			if e.Scheme == m.Scheme && e.ID == m.ID && e.Perms&need == need {
				return true
			}
		}
	}
	return false
}

// Authenticate adds the handle's digest identity to its session. The
// server accepts any secret here; CheckAccess tells whether it is the
// right one. The client re-sends it after every reconnection.
func (j *Job) Authenticate() error {
	if j.access.DigestUser == "" {
		return nil
	}
	if err := j.conn.AddAuth("digest", []byte(j.access.DigestUser+":"+j.access.DigestSecret)); err != nil {
		return fmt.Errorf("authenticating as digest user %s: %w", j.access.DigestUser, err)
	}
	return nil
}
