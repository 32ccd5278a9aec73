package webhdfsfake

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// RemoteException is an error answer of WebHDFS: the JSON body
// {"RemoteException": {"exception", "javaClassName", "message"}} that the
// reference's "Error Responses" section defines, with the HTTP status its
// table maps the exception to.
type RemoteException struct {
	Status        int    `json:"-"`
	Exception     string `json:"exception"`
	JavaClassName string `json:"javaClassName"`
	Message       string `json:"message"`
}

func (e *RemoteException) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Exception, e.Message)
}

// write sends e as the answer of a request.
func (e *RemoteException) write(w http.ResponseWriter) {
	body, err := json.Marshal(map[string]*RemoteException{"RemoteException": e})
	if err != nil { // a struct of strings always marshals
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body) // the client hung up; nothing to do
}

// The exceptions the fake answers, each with the status the reference maps
// it to: IllegalArgumentException 400, SecurityException 401, IOException
// and its subclasses 403, FileNotFoundException 404, RuntimeException 500.
func illegalArgument(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusBadRequest, "IllegalArgumentException", "java.lang.IllegalArgumentException", fmt.Sprintf(format, args...)}
}

func hadoopIllegalArgument(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusBadRequest, "HadoopIllegalArgumentException", "org.apache.hadoop.HadoopIllegalArgumentException", fmt.Sprintf(format, args...)}
}

func securityException(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusUnauthorized, "SecurityException", "java.lang.SecurityException", fmt.Sprintf(format, args...)}
}

func accessControl(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusForbidden, "AccessControlException", "org.apache.hadoop.security.AccessControlException", fmt.Sprintf(format, args...)}
}

func invalidToken(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusForbidden, "InvalidToken", "org.apache.hadoop.security.token.SecretManager$InvalidToken", fmt.Sprintf(format, args...)}
}

func standby(op string) *RemoteException {
	return &RemoteException{http.StatusForbidden, "StandbyException", "org.apache.hadoop.ipc.StandbyException",
		fmt.Sprintf("Operation category %s is not supported in state standby", opCategory(op))}
}

func ioException(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusForbidden, "IOException", "java.io.IOException", fmt.Sprintf(format, args...)}
}

func fileAlreadyExists(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusForbidden, "FileAlreadyExistsException", "org.apache.hadoop.fs.FileAlreadyExistsException", fmt.Sprintf(format, args...)}
}

func parentNotDirectory(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusForbidden, "ParentNotDirectoryException", "org.apache.hadoop.fs.ParentNotDirectoryException", fmt.Sprintf(format, args...)}
}

func pathIsNotEmptyDirectory(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusForbidden, "PathIsNotEmptyDirectoryException", "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", fmt.Sprintf(format, args...)}
}

func fileNotFound(format string, args ...any) *RemoteException {
	return &RemoteException{http.StatusNotFound, "FileNotFoundException", "java.io.FileNotFoundException", fmt.Sprintf(format, args...)}
}

// injected is the answer of a fault a test injected with status: a
// RetriableException for 503, as a namenode in safe mode or a busy
// datanode sends, and a RuntimeException otherwise.
func injected(status int, op string) *RemoteException {
	if status == http.StatusServiceUnavailable {
		return &RemoteException{status, "RetriableException", "org.apache.hadoop.ipc.RetriableException", "injected fault: " + op}
	}
	return &RemoteException{status, "RuntimeException", "java.lang.RuntimeException", "injected fault: " + op}
}

// tooLarge answers a body over Options.MaxBody. A real datanode streams any
// length into the file; the bound is the fake's own, so a test's runaway
// writer fails rather than filling memory.
func tooLarge(limit int64) *RemoteException {
	return &RemoteException{http.StatusRequestEntityTooLarge, "IOException", "java.io.IOException",
		fmt.Sprintf("request body over the fake's limit of %d bytes", limit)}
}

// opCategory is the operation category a standby namenode names.
func opCategory(op string) string {
	switch op {
	case opOpen, opGetFileStatus, opListStatus:
		return "READ"
	}
	return "WRITE"
}
