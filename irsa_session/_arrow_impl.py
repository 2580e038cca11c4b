"""The pyarrow classes: a FileSystemHandler over a native S3FileSystem rebuilt at each refresh.

Imported only when :func:`irsa_session.arrow_filesystem` is called (or such a
filesystem is unpickled).
"""

import os
import threading

import pyarrow.fs

from . import _fork

__all__ = ["Handler", "filesystem", "plain_filesystem", "STREAM_MIN_LIFE"]

#: The option (seconds) of arrow_filesystem(): the least life a stream's credentials
#: have left when it opens; default half their life.
STREAM_MIN_LIFE = "stream_min_life"

_ENDPOINT_S3 = "AWS_ENDPOINT_URL_S3"
_ENDPOINT = "AWS_ENDPOINT_URL"
_IGNORE_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"


def filesystem(source, s3_options):
    """A ``pyarrow.fs.PyFileSystem`` over a :class:`Handler` of ``source``'s credentials."""
    return pyarrow.fs.PyFileSystem(Handler(source, s3_options))


def plain_filesystem(s3_options, region_name=None):
    """pyarrow's own S3FileSystem on the AWS SDK's default chain (the fallback)."""
    return pyarrow.fs.S3FileSystem(**_native_options(s3_options, region_name))


def _native_options(s3_options, region_name):
    options = dict(s3_options)
    options.pop(STREAM_MIN_LIFE, None)  # the library's own option, not pyarrow's
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


def restore(source, s3_options):
    """Unpickle: ``source`` arrives rebuilt from its settings, with this process's own
    credentials; the same options."""
    return Handler(source, s3_options)


class Handler(pyarrow.fs.FileSystemHandler):
    """Serves each call from a native S3FileSystem made with the current credentials.

    Before each call it asks the shared credentials for their current frozen
    snapshot (which refreshes them in the advisory window, before the
    mandatory one); when the snapshot is a new one it builds a new native
    filesystem.  Streams opened earlier keep the filesystem, and so the
    credentials, they were opened with.  ``source`` is the library's session whose
    credentials it uses (IRSA, EKS Pod Identity or a chained role); it pickles as
    that session's settings, and as the options.
    """

    def __init__(self, source, s3_options):
        self.source = source
        self.s3_options = dict(s3_options)
        self.stream_min_life = self.s3_options.pop(STREAM_MIN_LIFE, None)
        self._lock = threading.Lock()
        self._native = None
        self._frozen = None
        self.builds = 0  # native filesystems made in this process
        _fork.track(self)

    def __reduce__(self):
        options = dict(self.s3_options)
        if self.stream_min_life is not None:
            options[STREAM_MIN_LIFE] = self.stream_min_life
        return restore, (self.source, options)

    def __repr__(self):
        return "<irsa_session arrow filesystem %r region=%r options=%r>" % (
            self.source,
            self.s3_options.get("region") or self.source.region_name,
            sorted(self.s3_options),
        )

    @property
    def settings(self):
        """The settings the source pickles as."""
        return self.source.__reduce__()[1]

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
        return self.source._irsa_credentials

    def native(self, stream=False):
        """The native S3FileSystem for the current credentials (rebuilt after a refresh).

        For a ``stream``, credentials with :attr:`stream_min_life` seconds left
        (default half their life), refreshed first if need be: a stream signs all
        its requests with the credentials it was opened with.
        """
        if stream:
            frozen = self.credentials.frozen_with_life(self.stream_min_life)
        else:
            frozen = self.credentials.get_frozen_credentials()
        native = self._native
        if native is not None and frozen is self._frozen:
            return native
        with self._lock:
            if self._native is None or frozen is not self._frozen:
                options = _native_options(self.s3_options, self.source.region_name)
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
        return self.native(stream=True).open_input_stream(_strip(path))

    def open_input_file(self, path):
        return self.native(stream=True).open_input_file(_strip(path))

    def open_output_stream(self, path, metadata):
        return self.native(stream=True).open_output_stream(_strip(path), metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.native(stream=True).open_append_stream(_strip(path), metadata=metadata)
