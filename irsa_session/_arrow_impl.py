"""The pyarrow classes: a FileSystemHandler over a native S3FileSystem rebuilt at each refresh.

Imported only when :func:`irsa_session.arrow_filesystem` is called (or such a
filesystem is unpickled).
"""

import os
import threading

import pyarrow.fs

from . import _fork, sessions

__all__ = ["Handler", "filesystem", "plain_filesystem"]

_ENDPOINT_S3 = "AWS_ENDPOINT_URL_S3"
_ENDPOINT = "AWS_ENDPOINT_URL"
_IGNORE_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"


def filesystem(settings, s3_options):
    """A ``pyarrow.fs.PyFileSystem`` over a :class:`Handler`."""
    return pyarrow.fs.PyFileSystem(Handler(settings, s3_options))


def plain_filesystem(s3_options):
    """pyarrow's own S3FileSystem on the AWS SDK's default chain (the fallback)."""
    return pyarrow.fs.S3FileSystem(**_native_options(s3_options, None))


def _native_options(s3_options, region_name):
    options = dict(s3_options)
    if options.get("region") is None and region_name:
        options["region"] = region_name
    if options.get("endpoint_override") is None:
        endpoint = _configured_endpoint()
        if endpoint:
            options["endpoint_override"] = endpoint
    return options


def _configured_endpoint(environ=os.environ):
    """botocore's S3 endpoint from the environment, which pyarrow's S3FileSystem ignores."""
    if environ.get(_IGNORE_ENDPOINTS, "").strip().lower() == "true":
        return None
    for name in (_ENDPOINT_S3, _ENDPOINT):
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _strip(path):
    return path[len("s3://"):] if path.startswith("s3://") else path


def restore(settings, s3_options):
    """Unpickle: the same settings and options, this process's own credentials."""
    return Handler(settings, s3_options)


class Handler(pyarrow.fs.FileSystemHandler):
    """Serves each call from a native S3FileSystem made with the current credentials.

    Before each call it asks the shared credentials for their current frozen
    snapshot (which refreshes them in the advisory window, before the
    mandatory one); when the snapshot is a new one it builds a new native
    filesystem.  Streams opened earlier keep the filesystem, and so the
    credentials, they were opened with.  Pickles as settings and options.
    """

    def __init__(self, settings, s3_options):
        self.settings = settings
        self.s3_options = dict(s3_options)
        self._lock = threading.Lock()
        self._native = None
        self._frozen = None
        self.builds = 0  # native filesystems made in this process
        _fork.track(self)

    def __reduce__(self):
        return restore, (self.settings, self.s3_options)

    def __repr__(self):
        return "<irsa_session arrow filesystem role_arn=%r region=%r options=%r>" % (
            self.settings.role_arn,
            self.s3_options.get("region") or self.settings.region_name,
            sorted(self.s3_options),
        )

    def __eq__(self, other):
        return (
            isinstance(other, Handler)
            and other.settings == self.settings
            and other.s3_options == self.s3_options
        )

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.settings)

    def _after_fork(self):
        self._lock = threading.Lock()
        self._native = self._frozen = None  # the parent's SDK clients do not survive a fork

    @property
    def credentials(self):
        return sessions._credentials_for(self.settings)

    def native(self):
        """The native S3FileSystem for the current credentials (rebuilt after a refresh)."""
        frozen = self.credentials.get_frozen_credentials()
        native = self._native
        if native is not None and frozen is self._frozen:
            return native
        with self._lock:
            if self._native is None or frozen is not self._frozen:
                options = _native_options(self.s3_options, self.settings.region_name)
                self._native = pyarrow.fs.S3FileSystem(
                    access_key=frozen.access_key,
                    secret_key=frozen.secret_key,
                    session_token=frozen.token,
                    **options
                )
                self._frozen = frozen
                self.builds += 1
            return self._native

    # -- pyarrow.fs.FileSystemHandler -----------------------------------------

    def get_type_name(self):
        return "irsa-s3"

    def normalize_path(self, path):
        return _strip(path)  # pure: resolving a path (as Ray's driver does) fetches nothing

    def get_file_info(self, paths):
        return self.native().get_file_info([_strip(path) for path in paths])

    def get_file_info_selector(self, selector):
        selector = pyarrow.fs.FileSelector(
            _strip(selector.base_dir),
            allow_not_found=selector.allow_not_found,
            recursive=selector.recursive,
        )
        return self.native().get_file_info(selector)

    def create_dir(self, path, recursive):
        self.native().create_dir(_strip(path), recursive=recursive)

    def delete_dir(self, path):
        self.native().delete_dir(_strip(path))

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.native().delete_dir_contents(_strip(path), missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        self.native().delete_dir_contents("/", accept_root_dir=True)

    def delete_file(self, path):
        self.native().delete_file(_strip(path))

    def move(self, src, dest):
        self.native().move(_strip(src), _strip(dest))

    def copy_file(self, src, dest):
        self.native().copy_file(_strip(src), _strip(dest))

    def open_input_stream(self, path):
        return self.native().open_input_stream(_strip(path))

    def open_input_file(self, path):
        return self.native().open_input_file(_strip(path))

    def open_output_stream(self, path, metadata):
        return self.native().open_output_stream(_strip(path), metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.native().open_append_stream(_strip(path), metadata=metadata)
