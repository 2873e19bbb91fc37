"""The AWS error codes the toolkit branches on (and the emulator answers with), each named once.

A code is a ClientError's ``Error.Code``, read by ``errors.error_code``, ``errors.is_code`` and
``errors.or_none``; moto raises the same codes. Each constant is its code word for word. Where AWS has
two spellings of one condition (RDS's code and its modeled exception's name, which moto answers), the
caller names both. The retry hook (``waits.is_transient``) takes THROTTLE_CODES and TRANSIENT_CODES, below.
"""

# A HEAD request (S3 HeadBucket) has no body, so its code is the bare HTTP status; so is an endpoint's
# answer for an operation it does not implement (moto's GetAccountSettings).
HTTP_403 = "403"
HTTP_404 = "404"
ACCESS_DENIED = "AccessDenied"  # IAM, S3 (query and XML APIs)
ACCESS_DENIED_EXCEPTION = "AccessDeniedException"  # JSON APIs
RESOURCE_NOT_FOUND_EXCEPTION = "ResourceNotFoundException"  # Lambda, CloudWatch Logs, ACM, EventBridge, DynamoDB
RESOURCE_IN_USE_EXCEPTION = "ResourceInUseException"  # ACM (a certificate in use), DynamoDB (a table by that name)

# IAM
NO_SUCH_ENTITY = "NoSuchEntity"
ENTITY_ALREADY_EXISTS = "EntityAlreadyExists"

# API Gateway (NotFoundException: SES v2 too)
NOT_FOUND_EXCEPTION = "NotFoundException"
CONFLICT_EXCEPTION = "ConflictException"
BAD_REQUEST_EXCEPTION = "BadRequestException"
TOO_MANY_REQUESTS_EXCEPTION = "TooManyRequestsException"
LIMIT_EXCEEDED_EXCEPTION = "LimitExceededException"

# Lambda
RESOURCE_CONFLICT_EXCEPTION = "ResourceConflictException"
RESOURCE_NOT_READY_EXCEPTION = "ResourceNotReadyException"
INVALID_PARAMETER_VALUE_EXCEPTION = "InvalidParameterValueException"

# CloudWatch Logs
RESOURCE_ALREADY_EXISTS_EXCEPTION = "ResourceAlreadyExistsException"

# DynamoDB
CONDITIONAL_CHECK_FAILED_EXCEPTION = "ConditionalCheckFailedException"

# RDS
DB_INSTANCE_NOT_FOUND = "DBInstanceNotFound"
DB_INSTANCE_NOT_FOUND_FAULT = "DBInstanceNotFoundFault"
DB_CLUSTER_NOT_FOUND = "DBClusterNotFound"
DB_CLUSTER_NOT_FOUND_FAULT = "DBClusterNotFoundFault"
DB_PROXY_NOT_FOUND_FAULT = "DBProxyNotFoundFault"
DB_PROXY_ALREADY_EXISTS_FAULT = "DBProxyAlreadyExistsFault"
INVALID_PARAMETER_VALUE = "InvalidParameterValue"

# EC2
INVALID_GROUP_NOT_FOUND = "InvalidGroup.NotFound"
INVALID_GROUP_DUPLICATE = "InvalidGroup.Duplicate"
INVALID_PERMISSION_NOT_FOUND = "InvalidPermission.NotFound"
INVALID_PERMISSION_DUPLICATE = "InvalidPermission.Duplicate"
DEPENDENCY_VIOLATION = "DependencyViolation"

# S3
NO_SUCH_BUCKET = "NoSuchBucket"
BUCKET_ALREADY_OWNED_BY_YOU = "BucketAlreadyOwnedByYou"
NO_SUCH_TAG_SET = "NoSuchTagSet"
NO_SUCH_BUCKET_POLICY = "NoSuchBucketPolicy"
NO_SUCH_PUBLIC_ACCESS_BLOCK_CONFIGURATION = "NoSuchPublicAccessBlockConfiguration"
NO_SUCH_LIFECYCLE_CONFIGURATION = "NoSuchLifecycleConfiguration"
OWNERSHIP_CONTROLS_NOT_FOUND_ERROR = "OwnershipControlsNotFoundError"
SERVER_SIDE_ENCRYPTION_CONFIGURATION_NOT_FOUND_ERROR = "ServerSideEncryptionConfigurationNotFoundError"

# SES (v1: receipt rules)
ALREADY_EXISTS = "AlreadyExists"
RULE_SET_DOES_NOT_EXIST = "RuleSetDoesNotExist"
RULE_DOES_NOT_EXIST = "RuleDoesNotExist"
INVALID_S3_CONFIGURATION = "InvalidS3Configuration"

# SNS
NOT_FOUND = "NotFound"

# CloudFront
NO_SUCH_DISTRIBUTION = "NoSuchDistribution"
NO_SUCH_RESOURCE = "NoSuchResource"
DISTRIBUTION_ALREADY_EXISTS = "DistributionAlreadyExists"
DISTRIBUTION_NOT_DISABLED = "DistributionNotDisabled"
NO_SUCH_CACHE_POLICY = "NoSuchCachePolicy"
CACHE_POLICY_ALREADY_EXISTS = "CachePolicyAlreadyExists"
CACHE_POLICY_IN_USE = "CachePolicyInUse"
INVALID_IF_MATCH_VERSION = "InvalidIfMatchVersion"
PRECONDITION_FAILED = "PreconditionFailed"

# WAFv2
WAF_NONEXISTENT_ITEM_EXCEPTION = "WAFNonexistentItemException"
WAF_DUPLICATE_ITEM_EXCEPTION = "WAFDuplicateItemException"
WAF_ASSOCIATED_ITEM_EXCEPTION = "WAFAssociatedItemException"
WAF_UNAVAILABLE_ENTITY_EXCEPTION = "WAFUnavailableEntityException"

# Throttling means AWS refused the call before doing anything: safe to send any call again. The codes
# botocore's standard retry mode takes for throttles (botocore/retries/standard.py,
# ThrottledRetryableChecker._THROTTLED_ERROR_CODES; aws/aws-sdk-js-v3#1205 added the last three): among
# them API Gateway's LimitExceededException ("The request exceeded the rate limit. Retry after the
# specified time period": 429 with retryAfterSeconds, API Gateway API reference), DynamoDB's
# ProvisionedThroughputExceededException and TransactionInProgressException, EC2's RequestLimitExceeded
# and EC2ThrottledException.
THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", TOO_MANY_REQUESTS_EXCEPTION,
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown",
    "PriorRequestNotComplete", LIMIT_EXCEEDED_EXCEPTION, "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "BandwidthLimitExceeded", "EC2ThrottledException",
})
TRANSIENT_CODES = THROTTLE_CODES | frozenset({
    "InternalError", "InternalFailure", "InternalServerError",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
})
