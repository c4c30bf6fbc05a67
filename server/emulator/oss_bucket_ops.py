"""Service- and bucket-level OSS operations: ListBuckets, ListObjects (v1/v2), CORS,
overwrite protection (overwrite_config), info."""

from __future__ import annotations

import base64

from werkzeug.wrappers import Response

from server.emulator import oss_documents as docs
from server.emulator.cors import cors_to_xml, parse_cors_xml
from server.emulator.oss_call import SUB_RESOURCES, Call, OperationBase
from server.emulator.oss_errors import OSSError
from server.emulator.overwrite_config import (
    NO_CONFIG_CODE,
    NO_CONFIG_MESSAGE,
    overwrite_to_xml,
    parse_overwrite_xml,
)
from server.emulator.storage import StoredObject


class BucketOperations(OperationBase):
    """Handlers for requests that address the service or the bucket itself."""

    def service_operation(self, call: Call) -> Response:
        if call.request.method != "GET":
            raise OSSError("MethodNotAllowed", "The specified method is not allowed.")
        self.authorize(call, "oss:ListBuckets")
        body = docs.list_buckets_result(
            [self.config.bucket], self.config.account_id, self.config.region, self.created
        )
        return Response(body, content_type="application/xml")

    def bucket_operation(self, call: Call, names: set[str]) -> Response:
        method = call.request.method
        cfg = self.config
        if "cors" in names:
            if method == "PUT":
                self.authorize(call, "oss:PutBucketCors")
                body = self.read_small_body(call.request)
                config = parse_cors_xml(body)
                self.store.write_cors(cors_to_xml(config))
                return Response(b"", status=200)
            if method == "GET":
                self.authorize(call, "oss:GetBucketCors")
                cors = self.cors_config()
                if cors is None:
                    raise OSSError(
                        "NoSuchCORSConfiguration",
                        "The CORS configuration does not exist.",
                        BucketName=cfg.bucket,
                    )
                return Response(cors_to_xml(cors), content_type="application/xml")
            if method == "DELETE":
                self.authorize(call, "oss:DeleteBucketCors")
                self.store.write_cors(None)
                return Response(b"", status=204)
        elif "overwriteConfig" in names:
            if method == "PUT":
                self.authorize(call, "oss:PutBucketOverwriteConfig")
                overwrite = parse_overwrite_xml(self.read_small_body(call.request))
                self.store.write_overwrite_config(overwrite_to_xml(overwrite))
                return Response(b"", status=200)
            if method == "GET":
                self.authorize(call, "oss:GetBucketOverwriteConfig")
                stored = self.overwrite_config()
                if stored is None:
                    raise OSSError(NO_CONFIG_CODE, NO_CONFIG_MESSAGE, BucketName=cfg.bucket)
                return Response(overwrite_to_xml(stored), content_type="application/xml")
            if method == "DELETE":
                self.authorize(call, "oss:DeleteBucketOverwriteConfig")
                self.store.write_overwrite_config(None)
                return Response(b"", status=204)
        elif "uploads" in names and method == "GET":
            self.authorize(call, "oss:ListMultipartUploads")
            prefix = call.request.args.get("prefix", "")
            body = docs.list_uploads_result(
                cfg.bucket, self.store.list_uploads(prefix), prefix, self.url_encoded(call)
            )
            return Response(body, content_type="application/xml")
        elif "location" in names and method == "GET":
            self.authorize(call, "oss:GetBucketLocation")
            return Response(docs.location_result(cfg.region), content_type="application/xml")
        elif "bucketInfo" in names and method == "GET":
            self.authorize(call, "oss:GetBucketInfo")
            body = docs.bucket_info_result(cfg.bucket, cfg.account_id, cfg.region, self.created)
            return Response(body, content_type="application/xml")
        elif "acl" in names and method == "GET":
            self.authorize(call, "oss:GetBucketAcl")
            return Response(docs.acl_result(cfg.account_id), content_type="application/xml")
        elif not (names & SUB_RESOURCES):
            if method == "GET":
                return self.list_objects(call)
            if method == "PUT":
                self.authorize(call, "oss:PutBucket")
                raise OSSError(
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared "
                    "by all users of the system. Please select a different name and try again.",
                    BucketName=cfg.bucket,
                )
        raise OSSError(
            "MethodNotAllowed", "The specified method is not allowed against this resource."
        )

    def list_objects(self, call: Call) -> Response:
        args = call.request.args
        prefix = args.get("prefix", "")
        delimiter = args.get("delimiter", "")
        v2 = args.get("list-type") == "2"
        try:
            max_keys = int(args.get("max-keys", "100"))
        except ValueError:
            raise OSSError("InvalidArgument", "max-keys must be an integer.") from None
        if not 0 <= max_keys <= 1000:
            raise OSSError("InvalidArgument", "Argument max-keys must be between 0 and 1000.")
        self.authorize(call, "oss:ListObjects", {"oss:Prefix": prefix, "oss:Delimiter": delimiter})
        if v2:
            token = args.get("continuation-token", "")
            start_after = args.get("start-after", "")
            if token:
                try:
                    marker = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
                except ValueError:
                    raise OSSError("InvalidArgument", "Invalid continuation token.") from None
            else:
                marker = start_after
        else:
            marker = args.get("marker", "")
        listing = self._page(prefix, delimiter, marker, max_keys)
        if v2 and listing.truncated:
            listing = docs.Listing(
                listing.objects,
                listing.common_prefixes,
                True,
                base64.urlsafe_b64encode(listing.next_marker.encode()).decode(),
            )
        body = docs.list_objects(
            self.config.bucket,
            self.config.account_id,
            listing,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            url_encoded=self.url_encoded(call),
            v2=v2,
            marker=marker,
            start_after=args.get("start-after", "") if v2 else "",
            continuation_token=args.get("continuation-token", "") if v2 else "",
            fetch_owner=not v2 or args.get("fetch-owner") == "true",
        )
        return Response(body, content_type="application/xml")

    def _page(self, prefix: str, delimiter: str, marker: str, max_keys: int) -> docs.Listing:
        objects: list[StoredObject] = []
        prefixes: list[str] = []
        last = ""
        marker_bytes = marker.encode("utf-8")
        for obj in self.store.list(prefix):
            if obj.key.encode("utf-8") <= marker_bytes:
                continue
            entry_key = obj.key
            if delimiter:
                cut = obj.key.find(delimiter, len(prefix))
                if cut >= 0:
                    entry_key = obj.key[: cut + len(delimiter)]
                    if prefixes and prefixes[-1] == entry_key:
                        continue
                    if entry_key.encode("utf-8") <= marker_bytes:
                        continue
            if len(objects) + len(prefixes) >= max_keys:
                return docs.Listing(objects, prefixes, True, last)
            if entry_key != obj.key:
                prefixes.append(entry_key)
            else:
                objects.append(obj)
            last = entry_key
        return docs.Listing(objects, prefixes, False, "")
