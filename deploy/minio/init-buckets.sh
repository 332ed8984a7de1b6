#!/bin/sh
# One-shot MinIO setup (the `minio-init` service of docker-compose.yml), safe to run again:
# the two buckets and the application's own access key, limited by a policy to what the
# service does: read sources; write, read and delete archives (retention). The root
# credentials stay with this container and MinIO itself.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$RECORDINGS_SOURCE_BUCKET" "local/$RECORDINGS_ARCHIVE_BUCKET"

policy=/tmp/recordings-app-policy.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$RECORDINGS_SOURCE_BUCKET", "arn:aws:s3:::$RECORDINGS_ARCHIVE_BUCKET"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject"],
     "Resource": ["arn:aws:s3:::$RECORDINGS_SOURCE_BUCKET/*"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$RECORDINGS_ARCHIVE_BUCKET/*"]}
  ]
}
JSON
mc admin policy create local recordings-app "$policy"
mc admin user add local "$RECORDINGS_S3_ACCESS_KEY" "$RECORDINGS_S3_SECRET_KEY"
# Attaching a policy that is already attached is an error for mc; that is the state we want.
mc admin policy attach local recordings-app --user "$RECORDINGS_S3_ACCESS_KEY" 2>/dev/null \
    || mc admin user info local "$RECORDINGS_S3_ACCESS_KEY" | grep -q recordings-app
echo "buckets $RECORDINGS_SOURCE_BUCKET, $RECORDINGS_ARCHIVE_BUCKET and the application's key are ready"
