"""Download one file of a Hub model repository into the Hugging Face cache, with errors that say what to do.

Configuration is ``huggingface_hub``'s own: ``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``
(read when ``huggingface_hub`` is imported, so set them before starting Python). A revision pinned to a commit hash
that is already cached is served without any network call, also in offline mode. A file that is not cached is
probed with one request without retries first, so an unreachable Hub fails at once with a message suggesting
``HF_HUB_OFFLINE=1`` (``hf_hub_download`` alone retries for about 23 s).
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants as hf_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import httpx

from ..errors import HubUnavailableError, WeightsNotFoundError
from .files import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from .ids import validate_filename, validate_hub_id, validate_revision

__all__ = ["download_file"]


def _cache_dir() -> str:
    return str(hf_constants.HF_HUB_CACHE)


def _hub_unreachable(where: str, err: Exception) -> HubUnavailableError:
    return HubUnavailableError(
        f"could not reach the Hugging Face Hub at {hf_constants.ENDPOINT} to download {where} ({err}), and it is not "
        f"in the cache ({_cache_dir()}). Check the network connection, proxy and HF_ENDPOINT, then retry. Without "
        "network, set HF_HUB_OFFLINE=1 to use only cached files (fill the cache once where the Hub is reachable, or "
        "copy that machine's cache and set HF_HUB_CACHE to it), or pass a local .safetensors path."
    )


def _probe(repo_id: str, filename: str, revision: str) -> None:
    """One ``HEAD`` request for the file, without retries (``get_hf_file_metadata(retry_on_errors=False)``).

    ``hf_hub_download`` retries a refused or timed-out connection five times with backoff (about 23 s in 2.4)
    before failing when the file is not cached, and no setting turns that off. Probing first makes an unreachable
    Hub fail at once (or after ``HF_HUB_ETAG_TIMEOUT`` seconds when packets are dropped); HTTP errors raise the
    same ``huggingface_hub`` errors as the download would.
    """
    url = hf_hub_url(repo_id, filename, revision=revision)
    get_hf_file_metadata(url, timeout=hf_constants.HF_HUB_ETAG_TIMEOUT, library_name="posezoo")


def download_file(repo_id: str, filename: str, revision: str) -> Path:
    """Download one file of a model repository through ``hf_hub_download`` into the Hugging Face cache.

    The id, revision and file name are validated first (:func:`validate_hub_id`, :func:`validate_revision`).
    A file already cached (a pinned commit, or a branch through the cached ``refs/``) is returned as
    ``hf_hub_download`` does; a file that is not cached is probed with one request first, so that an unreachable
    Hub fails at once instead of after ``huggingface_hub``'s retries (see :func:`_probe`).

    Args:
        repo_id: ``"org/name"``.
        filename: Path inside the repository.
        revision: Branch, tag or commit hash; a commit hash already cached is returned without network access.

    Returns:
        The cached file (``<cache>/models--org--name/snapshots/<commit>/<filename>``; the directory name is the
        commit the revision resolved to).

    Raises:
        InvalidInputError: the id, revision or file name is not valid (nothing was requested).
        WeightsNotFoundError: the repository, revision or file does not exist (or is private/gated).
        HubUnavailableError: the Hub cannot be reached, or offline mode is on, and the file is not in the cache.
    """
    validate_hub_id(repo_id)
    validate_revision(revision)
    validate_filename(filename)
    where = f"{filename} of {repo_id}@{revision}"
    try:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
        if not hf_constants.is_offline_mode() and not isinstance(cached, str):
            _probe(repo_id, filename, revision)
        return Path(hf_hub_download(repo_id, filename, revision=revision, library_name="posezoo"))
    except RepositoryNotFoundError as err:
        raise WeightsNotFoundError(
            f"Hub repository {repo_id!r} does not exist or is private/gated (endpoint {hf_constants.ENDPOINT}). "
            "Check the repo id; for a private repo log in with `hf auth login` or set HF_TOKEN."
        ) from err
    except RevisionNotFoundError as err:
        raise WeightsNotFoundError(
            f"revision {revision!r} does not exist in Hub repository {repo_id!r}. Use a branch, tag or commit hash "
            "that exists (omit '@revision' for main)."
        ) from err
    except RemoteEntryNotFoundError as err:
        raise WeightsNotFoundError(
            f"{repo_id}@{revision} has no file {filename!r}. posezoo repositories hold {CONFIG_NAME}, "
            f"{WEIGHTS_NAME} and {CARD_NAME} as written by save_pretrained/push_to_hub."
        ) from err
    except LocalEntryNotFoundError as err:
        if hf_constants.is_offline_mode():
            raise HubUnavailableError(
                f"offline mode is on (HF_HUB_OFFLINE=1) and {where} is not in the Hugging Face cache "
                f"({_cache_dir()}). Load it once with network access (unset HF_HUB_OFFLINE) to fill the cache, copy "
                "the cache directory from a machine that has it (set HF_HUB_CACHE to it), or pass a local "
                ".safetensors path."
            ) from err
        raise _hub_unreachable(where, err) from err
    except httpx.TransportError as err:
        raise _hub_unreachable(where, err) from err
    except HfHubHTTPError as err:
        raise HubUnavailableError(
            f"the Hugging Face Hub at {hf_constants.ENDPOINT} failed to serve {where}: {err}. Retry later, or pass a "
            "local .safetensors path."
        ) from err
