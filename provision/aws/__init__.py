"""What the steps share about AWS, none of it a step: the partition in ARNs, DNS records and the
database's look-ups, the function's package, log groups, ACM's approval mail, the permissions
boundary every role carries, and the account-wide or borrowed parts one step manages through
another (the region's API Gateway logging role, CloudFront's cache policy). Nothing here imports
a step."""
