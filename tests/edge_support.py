"""What the CloudFront step finds made by the earlier steps (test_cloudfront.py, test_edge_as_aws.py):
a deployed REST API, an API key, a certificate, their ids in the state file."""
import boto3

from tests.support import quiet_context

REGION = "eu-west-1"
DOMAIN = "api.example.com"


def apigateway():
    return boto3.client("apigateway", region_name=REGION)


def edge(service):
    return boto3.client(service, region_name="us-east-1")


def make_api(stage="v1"):
    """A REST API with GET /items deployed to the stage, as the api step leaves it."""
    api_id = apigateway().create_rest_api(name="demo", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigateway().get_resources(restApiId=api_id)["items"][0]["id"]
    resource = apigateway().create_resource(restApiId=api_id, parentId=root, pathPart="items")["id"]
    apigateway().put_method(restApiId=api_id, resourceId=resource, httpMethod="GET", authorizationType="NONE",
                            apiKeyRequired=True)
    apigateway().put_integration(restApiId=api_id, resourceId=resource, httpMethod="GET", type="MOCK")
    apigateway().create_deployment(restApiId=api_id, stageName=stage)
    return api_id


def make_key(name="demo"):
    key = apigateway().create_api_key(name=name, enabled=True)
    return key["id"], key["value"]


def make_certificate(token="first"):
    return edge("acm").request_certificate(DomainName=DOMAIN, ValidationMethod="DNS",
                                           IdempotencyToken=token)["CertificateArn"]


def put_state(cfg, **steps):
    """Record steps' state on disk, as the earlier steps of a deploy would."""
    ctx = quiet_context(cfg)
    for step, values in steps.items():
        ctx.state.put(step, {**ctx.state.get(step), **values})
    ctx.state.save()


def edge_prerequisites(cfg) -> dict:
    """What the distribution needs made, with its ids in the state file as the earlier steps leave them:
    the REST API and its key, the certificate and the web ACL."""
    from provision.steps import waf
    from tests.support import run_once

    api_id = make_api()
    key_id, key_value = make_key()
    run_once(cfg, waf.ensure)
    put_state(cfg, api={"rest_api_id": api_id, "api_key_id": key_id, "stage": "v1",
                        "execute_api_domain": f"{api_id}.execute-api.{REGION}.amazonaws.com"},
              certificate={"arn": make_certificate()})
    return {"api_id": api_id, "key_id": key_id, "key_value": key_value}
