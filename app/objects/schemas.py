"""Object store request bodies and response models."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.objects.model import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ListedObject,
    MultipartUpload,
    ObjectBucket,
    Part,
    StoredObject,
    Verification,
)
from app.objects.presign import MAX_CONTENT_TYPE_CHARS, MAX_EXPIRES_IN
from app.platform.jsonutil import Timestamp, datetime_of_ms

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class ObjectBucketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    name: str = Field(pattern=BUCKET_PATTERN, description="[a-z0-9][a-z0-9._-]{0,62}")
    description: str = Field(default="", max_length=1024)
    chunk_size: int | None = Field(
        default=None, ge=MIN_CHUNK_SIZE, le=MAX_CHUNK_SIZE, description="Bytes per stored chunk (default 1 MiB)"
    )
    max_object_size: int | None = Field(default=None, ge=1, description="Bytes; default: the service limit")


class ObjectBucketOut(BaseModel):
    name: str
    description: str
    chunk_size: int
    max_object_size: int | None
    objects: int
    bytes: int
    created_at: Timestamp

    @classmethod
    def of(cls, bucket: ObjectBucket) -> ObjectBucketOut:
        return cls(
            name=bucket.name,
            description=bucket.description,
            chunk_size=bucket.chunk_size,
            max_object_size=bucket.max_object_size,
            objects=bucket.objects,
            bytes=bucket.bytes,
            created_at=datetime_of_ms(bucket.created_ms),
        )


class ObjectBucketList(BaseModel):
    items: list[ObjectBucketOut]


class ObjectOut(BaseModel):
    bucket: str
    name: str
    size: int
    sha256: str
    etag: str = Field(description="The quoted SHA-256, as in the ETag header")
    chunks: int
    chunk_size: int
    version: int
    content_type: str
    description: str
    metadata: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, obj: StoredObject) -> ObjectOut:
        return cls(
            bucket=obj.bucket,
            name=obj.name,
            size=obj.size,
            sha256=obj.sha256,
            etag=obj.etag,
            chunks=obj.chunks,
            chunk_size=obj.chunk_size,
            version=obj.version,
            content_type=obj.content_type,
            description=obj.description,
            metadata=obj.metadata,
            created_at=datetime_of_ms(obj.created_ms),
            updated_at=datetime_of_ms(obj.updated_ms),
        )


class ObjectListItem(BaseModel):
    name: str
    size: int
    etag: str
    content_type: str
    updated_at: Timestamp

    @classmethod
    def of(cls, item: ListedObject) -> ObjectListItem:
        return cls(
            name=item.name,
            size=item.size,
            etag=f'"{item.sha256}"',
            content_type=item.content_type,
            updated_at=datetime_of_ms(item.updated_ms),
        )


class ObjectPageOut(BaseModel):
    items: list[ObjectListItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class VerifyOut(BaseModel):
    name: str
    valid: bool
    expected: str = Field(description="The SHA-256 recorded when the object was written")
    actual: str | None = Field(description="The SHA-256 of the stored chunks; null when chunks are missing")
    size: int = Field(description="Bytes found in the stored chunks")
    missing_chunks: int
    hashed_at: Timestamp = Field(
        description="When the chunks were hashed: now, or an earlier verification of the same chunks that found"
        " them valid, remembered for 10 minutes (the chunks' presence and lengths are checked on every call)"
    )

    @classmethod
    def of(cls, v: Verification) -> VerifyOut:
        fields = asdict(v)
        hashed_at = datetime_of_ms(fields.pop("hashed_ms"))
        return cls(**fields, hashed_at=hashed_at)


class PartOut(BaseModel):
    part_number: int
    size: int
    sha256: str
    etag: str

    @classmethod
    def of(cls, part: Part) -> PartOut:
        return cls(part_number=part.part_number, size=part.size, sha256=part.sha256, etag=f'"{part.sha256}"')


class UploadOut(BaseModel):
    upload_id: str
    bucket: str
    name: str
    created_at: Timestamp
    expires_at: Timestamp
    parts: list[PartOut]

    @classmethod
    def of(cls, upload: MultipartUpload) -> UploadOut:
        return cls(
            upload_id=upload.upload_id,
            bucket=upload.bucket,
            name=upload.name,
            created_at=datetime_of_ms(upload.created_ms),
            expires_at=datetime_of_ms(upload.expires_ms),
            parts=[PartOut.of(part) for part in upload.parts],
        )


class CompleteUpload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    parts: list[int] = Field(min_length=1, description="Part numbers in ascending order")


class PresignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    method: Literal["GET", "PUT"] = Field(description="GET (HEAD too) to read the object, PUT to write it")
    expires_in: int = Field(default=3600, ge=1, le=MAX_EXPIRES_IN, description="Seconds the URL stays valid")
    content_type: str | None = Field(
        default=None,
        max_length=MAX_CONTENT_TYPE_CHARS,
        pattern=r"^[\x21-\x7e][\x20-\x7e]*$",
        description="PUT only: the Content-Type the upload must carry (default: any)",
    )
    max_bytes: int | None = Field(
        default=None, ge=1, le=2**62, description="PUT only: the most bytes the upload may have (default: the bucket's)"
    )

    @model_validator(mode="after")
    def _put_only(self) -> PresignCreate:
        if self.method == "GET" and (self.content_type is not None or self.max_bytes is not None):
            raise ValueError("content_type and max_bytes apply to PUT URLs only")
        return self


class PresignOut(BaseModel):
    url: str = Field(description="The object's URL with the signature; no Authorization header needed")
    method: Literal["GET", "PUT"]
    expires_at: Timestamp
